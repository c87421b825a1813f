// Shared by the interop scripts that the Rust tests in crates/purser/tests/it/interop.rs run:
// reading the environment they pass, building the SDK's clients, and the output protocol
// (exactly one JSON line on stdout on success; diagnostics on stderr and a non-zero exit code
// on failure).

import { privateKeyToAccount } from "viem/accounts";
import { x402Client } from "@x402/core/client";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { AuthCaptureEvmScheme } from "@x402/evm/auth-capture/client";

/** A required environment variable. */
export function env(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`environment variable ${name} is not set`);
  }
  return value;
}

/** What the Rust test hands every script. */
export function settings() {
  return {
    facilitatorUrl: env("PURSER_FACILITATOR_URL"),
    apiKey: env("PURSER_API_KEY"),
    payerKey: env("X402_PAYER_KEY"),
    network: env("X402_NETWORK"),
    asset: env("X402_ASSET"),
    assetName: env("X402_ASSET_NAME"),
    assetVersion: env("X402_ASSET_VERSION"),
    payTo: env("X402_PAY_TO"),
    amount: env("X402_AMOUNT"),
  };
}

/** Requirements for one `exact` payment of the configured token. */
export function requirements(s, overrides = {}) {
  return {
    scheme: "exact",
    network: s.network,
    amount: s.amount,
    asset: s.asset,
    payTo: s.payTo,
    maxTimeoutSeconds: 60,
    extra: { name: s.assetName, version: s.assetVersion },
    ...overrides,
  };
}

/**
 * The SDK's facilitator client pointed at Purser. `apiKey` null sends no `Authorization`.
 * The auth headers are keyed by endpoint, as the SDK requires.
 */
export function facilitator(s, apiKey = s.apiKey) {
  return new HTTPFacilitatorClient({
    url: s.facilitatorUrl,
    timeoutMs: 30_000,
    createAuthHeaders:
      apiKey === null
        ? undefined
        : async () => {
            const headers = { Authorization: `Bearer ${apiKey}` };
            return { verify: headers, settle: headers, supported: headers };
          },
  });
}

/** An x402 client paying with the payer key, allowed to spend the configured (non-default) token. */
export function payingClient(s) {
  const account = privateKeyToAccount(s.payerKey);
  // Both EVM schemes Purser offers: an `exact` route is paid with `exact`, an escrowed one
  // with `auth-capture`.
  const client = new x402Client()
    .register(s.network, new ExactEvmScheme(account))
    .register(s.network, new AuthCaptureEvmScheme(account))
    .setSpendControls({
      allowedAssets: [{ network: s.network, asset: s.asset, maxAmountPerPayment: s.amount }],
    });
  return { client, account };
}

/** Runs `fn` and answers its result, or `{threw: true, name, message, ...}` if it throws. */
export async function attempt(fn) {
  try {
    return await fn();
  } catch (error) {
    return {
      threw: true,
      name: error?.constructor?.name ?? typeof error,
      message: String(error?.message ?? error),
      // VerifyError / SettleError carry the facilitator's answer.
      statusCode: error?.statusCode,
      invalidReason: error?.invalidReason,
      errorReason: error?.errorReason,
    };
  }
}

/**
 * Runs `main`, prints its result as one JSON line and exits 0; on an error or after
 * `timeoutMs`, prints the reason on stderr and exits 1. The Rust side has its own, longer bound.
 */
export function run(main, timeoutMs = 50_000) {
  const watchdog = setTimeout(() => {
    console.error(`interop script timed out after ${timeoutMs} ms`);
    process.exit(1);
  }, timeoutMs);
  main().then(
    (result) => {
      clearTimeout(watchdog);
      process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
    },
    (error) => {
      clearTimeout(watchdog);
      console.error(error?.stack ?? String(error));
      process.exit(1);
    },
  );
}
