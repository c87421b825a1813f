// Repeat access with the official client: @x402/fetch with ExactEvmScheme and the
// `sign-in-with-x` client extension of @x402/extensions. It asks for X402_URL twice: the first
// time the sign-in finds nothing bought yet and the client pays; the second time the sign-in
// alone lets it in. Then it presents the last SIGN-IN-WITH-X header again (a replayed nonce).
//
// With X402_SIGN_IN_ONLY=1 it only signs in (no payment scheme registered), as the contract
// wallet at X402_WALLET whose owner holds X402_PAYER_KEY: the wallet answers ERC-1271 for its
// owner's EIP-191 signatures. Run by crates/purser/tests/it/entitlement.rs; prints one JSON line.

import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from "@x402/core/http";
import { createSIWxClientExtension } from "@x402/extensions/sign-in-with-x";
import { wrapFetchWithPayment } from "@x402/fetch";
import { privateKeyToAccount } from "viem/accounts";

import { env, payingClient, run, settings } from "./common.mjs";

async function bodyOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

run(async () => {
  const url = env("X402_URL");
  const signInOnly = process.env.X402_SIGN_IN_ONLY === "1";

  let client;
  let signer;
  if (signInOnly) {
    const owner = privateKeyToAccount(env("X402_PAYER_KEY"));
    const wallet = env("X402_WALLET");
    // A contract wallet: its address signs in, its owner's key signs the message.
    signer = { address: wallet, signMessage: ({ message }) => owner.signMessage({ message }) };
    client = new x402Client();
  } else {
    const paying = payingClient(settings());
    client = paying.client;
    signer = paying.account;
  }
  client.registerExtension(createSIWxClientExtension({ signers: [signer] }));

  // Records what the client sends, request by request.
  const sent = [];
  const recordingFetch = async (input, init) => {
    const request = new Request(input, init);
    sent.push({
      signIn: request.headers.get("sign-in-with-x"),
      payment: request.headers.get("payment-signature"),
    });
    return fetch(request);
  };
  const pay = wrapFetchWithPayment(recordingFetch, client);

  const calls = [];
  for (const round of signInOnly ? [1] : [1, 2]) {
    const before = sent.length;
    let response;
    try {
      response = await pay(url);
    } catch (error) {
      calls.push({ round, threw: String(error?.message ?? error) });
      continue;
    }
    const settled = response.headers.get("payment-response");
    const required = response.headers.get("payment-required");
    calls.push({
      round,
      status: response.status,
      body: await bodyOf(response),
      paymentResponse: settled ? decodePaymentResponseHeader(settled) : null,
      paymentRequired: required ? decodePaymentRequiredHeader(required) : null,
      session: response.headers.get("x-purser-session"),
      requests: sent.slice(before).map((s) => ({ signIn: !!s.signIn, payment: !!s.payment })),
    });
  }

  // The last sign-in again: its nonce is spent.
  const lastSignIn = [...sent].reverse().find((s) => s.signIn)?.signIn ?? null;
  let replay = null;
  if (lastSignIn) {
    const again = await fetch(url, { headers: { "sign-in-with-x": lastSignIn } });
    replay = { status: again.status };
  }
  return { address: signer.address, calls, replay };
});
