// Signs a payment for the challenge in X402_PAYMENT_REQUIRED (a PAYMENT-REQUIRED header) with
// the official client, as @x402/fetch does before it retries, and prints the PAYMENT-SIGNATURE
// header. Run by the Rust tests of Purser's gRPC checks, where no HTTP request passes through a
// client the SDK could wrap; prints one JSON line.

import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";

import { env, payingClient, run, settings } from "./common.mjs";

run(async () => {
  const required = decodePaymentRequiredHeader(env("X402_PAYMENT_REQUIRED"));
  const { client, account } = payingClient(settings());
  const payload = await client.createPaymentPayload(required);
  return { payer: account.address, paymentSignature: encodePaymentSignatureHeader(payload) };
});
