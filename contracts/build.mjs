// Compiles contracts/src/*.sol with the pinned solc-js (a dependency of tests/interop) and writes
// one artefact per deployable contract, contracts/out/<Name>.json:
//
//   {abi, bytecode, contractName, deployedBytecode, evmVersion, optimizerRuns, solcVersion,
//    sourcePath, sourceSha256}
//
// The output is deterministic (keys sorted at every level, two-space indentation, a final
// newline), so the committed artefacts can be diffed against a fresh build: `cargo xtask
// contracts` runs this script, `cargo xtask contracts --check` runs it into a temporary folder and
// compares. Compiler warnings fail the build, as errors do.
//
// Usage: node contracts/build.mjs [--out <dir>]   (default: contracts/out)

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const EVM_VERSION = "cancun";
const OPTIMIZER_RUNS = 200;

const contractsDir = dirname(fileURLToPath(import.meta.url));
const interopDir = join(contractsDir, "..", "tests", "interop");

function fail(message) {
  console.error(`contracts/build.mjs: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  let out = join(contractsDir, "out");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) {
      out = resolve(argv[++i]);
    } else {
      fail(`unknown argument \`${argv[i]}\` (usage: node contracts/build.mjs [--out <dir>])`);
    }
  }
  return { out };
}

function loadSolc() {
  const require = createRequire(join(interopDir, "package.json"));
  try {
    return require("solc");
  } catch {
    return fail("solc is not installed: run `npm ci` in tests/interop (or `cargo xtask contracts`)");
  }
}

/** JSON with object keys sorted at every level. */
function stableStringify(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort(v[k])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

const { out } = parseArgs(process.argv.slice(2));
const solc = loadSolc();

const sourceFiles = readdirSync(join(contractsDir, "src"))
  .filter((f) => f.endsWith(".sol"))
  .sort();
if (sourceFiles.length === 0) fail("no sources in contracts/src");

const sources = {};
const sourceSha256 = {};
for (const file of sourceFiles) {
  const unit = `src/${file}`;
  const content = readFileSync(join(contractsDir, unit), "utf8");
  sources[unit] = { content };
  sourceSha256[unit] = createHash("sha256").update(content).digest("hex");
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
    // No IPFS hash of the metadata in the bytecode: it changes with comments and paths.
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(
  solc.compile(JSON.stringify(input), {
    import: (path) => ({ error: `imports are not supported (${path}): contracts are self-contained` }),
  }),
);
const diagnostics = output.errors ?? [];
for (const d of diagnostics) console.error(d.formattedMessage ?? d.message);
if (diagnostics.some((d) => d.severity === "error" || d.severity === "warning")) {
  fail("compilation failed (warnings count as errors)");
}

mkdirSync(out, { recursive: true });
const written = [];
for (const [unit, contracts] of Object.entries(output.contracts ?? {})) {
  for (const [contractName, compiled] of Object.entries(contracts)) {
    const bytecode = compiled.evm.bytecode.object;
    // Interfaces and abstract contracts have no code to deploy.
    if (!bytecode) continue;
    if (written.includes(contractName)) fail(`two contracts are named ${contractName}`);
    const artefact = {
      contractName,
      abi: compiled.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      solcVersion: solc.version(),
      evmVersion: EVM_VERSION,
      optimizerRuns: OPTIMIZER_RUNS,
      sourcePath: unit,
      sourceSha256: sourceSha256[unit],
    };
    writeFileSync(join(out, `${contractName}.json`), stableStringify(artefact));
    written.push(contractName);
  }
}
written.sort();
console.log(`compiled ${written.join(", ")} with solc ${solc.version()} into ${out}`);
