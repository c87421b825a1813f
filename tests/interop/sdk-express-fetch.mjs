// An @x402/express resource server whose facilitator is Purser (the SDK's HTTPFacilitatorClient
// with a resource_server key), selling `GET /paid` for an amount of a custom token, and an
// @x402/fetch client paying for it. Run by crates/purser/tests/it/interop.rs; prints one JSON line.

import express from "express";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from "@x402/core/http";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { wrapFetchWithPayment } from "@x402/fetch";

import { facilitator, payingClient, run, settings } from "./common.mjs";

const BODY = { paid: true, message: "hello from behind the paywall" };

/** Starts `app` on a free port of 127.0.0.1; answers the server and its base URL. */
function listen(app) {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, "127.0.0.1", (error) => {
      if (error) return reject(error);
      const { port } = server.address();
      resolve({ server, base: `http://127.0.0.1:${port}` });
    });
    server.on("error", reject);
  });
}

function headersOf(response) {
  return Object.fromEntries(response.headers.entries());
}

run(async () => {
  const s = settings();
  const resourceServer = new x402ResourceServer(facilitator(s)).register(
    s.network,
    new ExactEvmScheme(),
  );
  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /paid": {
          accepts: {
            scheme: "exact",
            network: s.network,
            payTo: s.payTo,
            price: {
              amount: s.amount,
              asset: s.asset,
              extra: { name: s.assetName, version: s.assetVersion },
            },
            maxTimeoutSeconds: 60,
          },
          description: "a paid thing",
          mimeType: "application/json",
        },
      },
      resourceServer,
    ),
  );
  app.get("/paid", (_request, response) => response.json(BODY));

  const { server, base } = await listen(app);
  try {
    // Without payment: 402 and the requirements in PAYMENT-REQUIRED.
    const unpaid = await fetch(`${base}/paid`);
    const requiredHeader = unpaid.headers.get("payment-required");
    const unpaidResult = {
      status: unpaid.status,
      headers: headersOf(unpaid),
      paymentRequired: requiredHeader ? decodePaymentRequiredHeader(requiredHeader) : null,
    };
    await unpaid.arrayBuffer();

    // With the fetch wrapper: 402, sign, retry, 200.
    const { client, account } = payingClient(s);
    // Records the PAYMENT-SIGNATURE the wrapper sends, to replay it below.
    const signatures = [];
    const recordingFetch = async (input, init) => {
      const request = new Request(input, init);
      const signature = request.headers.get("payment-signature");
      if (signature) signatures.push(signature);
      return fetch(request);
    };
    const payFetch = wrapFetchWithPayment(recordingFetch, client);
    const paid = await payFetch(`${base}/paid`);
    const text = await paid.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const responseHeader = paid.headers.get("payment-response");

    // The same payment presented again: Purser finds the authorization spent, so the server
    // answers 402 with the reason, and nothing more moves.
    let replay = null;
    if (signatures.length > 0) {
      const again = await fetch(`${base}/paid`, {
        headers: { "PAYMENT-SIGNATURE": signatures[signatures.length - 1] },
      });
      const header = again.headers.get("payment-required");
      replay = {
        status: again.status,
        paymentRequired: header ? decodePaymentRequiredHeader(header) : null,
        paymentResponse: again.headers.get("payment-response"),
      };
      await again.arrayBuffer();
    }
    return {
      payer: account.address,
      unpaid: unpaidResult,
      paid: {
        status: paid.status,
        headers: headersOf(paid),
        body,
        paymentResponse: responseHeader ? decodePaymentResponseHeader(responseHeader) : null,
      },
      signaturesSent: signatures.length,
      replay,
    };
  } finally {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  }
});
