// Signs an `auth-capture` payment for the requirements in X402_REQUIREMENTS (one
// PaymentRequirements, JSON) with the official client (`@x402/evm`'s auth-capture client), as a
// paying agent would, and prints the payer and the payment payload. Run by the Rust tests that
// check Purser derives the same PaymentInfo, nonce and salt as the client; prints one JSON line.

import { privateKeyToAccount } from "viem/accounts";
import { AuthCaptureEvmScheme } from "@x402/evm/auth-capture/client";

import { env, run } from "./common.mjs";

run(async () => {
  const requirements = JSON.parse(env("X402_REQUIREMENTS"));
  const account = privateKeyToAccount(env("X402_PAYER_KEY"));
  const scheme = new AuthCaptureEvmScheme(account);
  const signed = await scheme.createPaymentPayload(2, requirements, {});
  return { payer: account.address, payload: signed.payload };
});
