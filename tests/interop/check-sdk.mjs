// Smoke check of the interop install: loads the x402 reference SDK packages and viem, checks the
// entry points the interop tests use are there, and prints each package's version.
// Run with `npm run check-sdk` (or `node check-sdk.mjs`) in tests/interop.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

// package -> [module specifier, export it must have]...
const expected = {
  "@x402/core": [
    ["@x402/core", "x402Version"],
    ["@x402/core/client", "x402Client"],
    ["@x402/core/facilitator", "x402Facilitator"],
  ],
  "@x402/evm": [
    ["@x402/evm/exact/client", "ExactEvmScheme"],
    ["@x402/evm/exact/facilitator", "ExactEvmScheme"],
  ],
  "@x402/fetch": [["@x402/fetch", "wrapFetchWithPayment"]],
  "@x402/express": [["@x402/express", "paymentMiddleware"]],
  "@x402/extensions": [["@x402/extensions", "declareDiscoveryExtension"]],
  viem: [
    ["viem", "createWalletClient"],
    ["viem/accounts", "privateKeyToAccount"],
  ],
};

/** The installed version, from the package.json at the root of the package's folder. */
function installedVersion(name) {
  const entry = require.resolve(name);
  const marker = `/node_modules/${name}/`;
  const root = entry.slice(0, entry.lastIndexOf(marker) + marker.length);
  return JSON.parse(readFileSync(`${root}package.json`, "utf8")).version;
}

for (const [name, checks] of Object.entries(expected)) {
  for (const [specifier, exportName] of checks) {
    const module = await import(specifier);
    if (!(exportName in module)) throw new Error(`${specifier} does not export ${exportName}`);
  }
  console.log(`${name} ${installedVersion(name)}`);
}
