// The @x402/express side of `purser-bench --suite resource-servers`: an express app selling
// `GET /data` with the reference SDK's paymentMiddleware (ExactEvmScheme), its facilitator client
// (HTTPFacilitatorClient) pointed at Purser's /facilitator with a resource_server key, and an
// unpriced `GET /free`. Both routes answer BENCH_BODY as it is, as the harness's upstream does.
// Serves on BENCH_LISTEN_PORT (127.0.0.1) until killed; prints `listening <base URL>` when ready.
//
// Environment: PURSER_FACILITATOR_URL, PURSER_API_KEY, X402_NETWORK, X402_ASSET,
// X402_ASSET_NAME, X402_ASSET_VERSION, X402_PAY_TO, X402_AMOUNT, BENCH_BODY, BENCH_LISTEN_PORT.

import express from "express";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { ExactEvmScheme } from "@x402/evm/exact/server";

import { env, facilitator } from "./common.mjs";

const s = {
  facilitatorUrl: env("PURSER_FACILITATOR_URL"),
  apiKey: env("PURSER_API_KEY"),
  network: env("X402_NETWORK"),
  asset: env("X402_ASSET"),
  assetName: env("X402_ASSET_NAME"),
  assetVersion: env("X402_ASSET_VERSION"),
  payTo: env("X402_PAY_TO"),
  amount: env("X402_AMOUNT"),
};
const body = env("BENCH_BODY");
const port = Number(env("BENCH_LISTEN_PORT"));

const resourceServer = new x402ResourceServer(facilitator(s)).register(
  s.network,
  new ExactEvmScheme(),
);
const app = express();
app.use(
  paymentMiddleware(
    {
      "GET /data": {
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
        description: "purser-bench data",
        mimeType: "application/json",
      },
    },
    resourceServer,
  ),
);
const answer = (_request, response) => response.type("application/json").send(body);
app.get("/data", answer);
app.get("/free", answer);

const server = app.listen(port, "127.0.0.1", (error) => {
  if (error) {
    console.error(error?.stack ?? String(error));
    process.exit(1);
  }
  console.log(`listening http://127.0.0.1:${port}`);
});
server.keepAliveTimeout = 120_000;
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
