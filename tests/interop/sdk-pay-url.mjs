// Pays for X402_URL with an official client and reports every step: the unpaid 402, the paid
// answer, and the same payment presented again. X402_CLIENT picks the client: `v2`
// (@x402/fetch with ExactEvmScheme) or `v1` (x402-fetch 1.x, which reads the JSON body and
// sends X-PAYMENT). Run by the Rust tests of Purser's gateway, native layer and nginx; prints one
// JSON line.

import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from "@x402/core/http";
import { wrapFetchWithPayment } from "@x402/fetch";
import { wrapFetchWithPayment as wrapFetchV1, decodeXPaymentResponse } from "x402-fetch";
import { createWalletClient, http, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";

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
  const which = process.env.X402_CLIENT ?? "v2";

  const unpaid = await fetch(url);
  const requiredHeader = unpaid.headers.get("payment-required");
  const unpaidResult = {
    status: unpaid.status,
    paymentRequired: requiredHeader ? decodePaymentRequiredHeader(requiredHeader) : null,
    body: await bodyOf(unpaid),
  };

  // Records the payment header the client sends, to present it again below.
  const sent = [];
  const recordingFetch = async (input, init) => {
    const request = new Request(input, init);
    for (const name of ["payment-signature", "x-payment"]) {
      const value = request.headers.get(name);
      if (value) sent.push({ name, value });
    }
    return fetch(request);
  };

  let payFetch;
  let payer;
  if (which === "v1") {
    const account = privateKeyToAccount(env("X402_PAYER_KEY"));
    payer = account.address;
    const wallet = createWalletClient({ account, chain: baseSepolia, transport: http() }).extend(
      publicActions,
    );
    payFetch = wrapFetchV1(recordingFetch, wallet, BigInt(env("X402_AMOUNT")));
  } else {
    const { client, account } = payingClient(settings());
    payer = account.address;
    payFetch = wrapFetchWithPayment(recordingFetch, client);
  }
  const paid = await payFetch(url);
  const v2Response = paid.headers.get("payment-response");
  const v1Response = paid.headers.get("x-payment-response");
  const paidResult = {
    status: paid.status,
    body: await bodyOf(paid),
    paymentResponse: v2Response ? decodePaymentResponseHeader(v2Response) : null,
    xPaymentResponse: v1Response ? decodeXPaymentResponse(v1Response) : null,
  };

  let replay = null;
  if (sent.length > 0) {
    const last = sent[sent.length - 1];
    const again = await fetch(url, { headers: { [last.name]: last.value } });
    replay = { status: again.status, body: await bodyOf(again) };
  }
  return { payer, unpaid: unpaidResult, paid: paidResult, sent: sent.map((s) => s.name), replay };
});
