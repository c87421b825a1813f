// Discovery interop: an @x402/express resource server declaring the bazaar extension
// (declareDiscoveryExtension from @x402/extensions), facilitated by Purser, is paid once by
// @x402/fetch; then the bazaar discovery client (withBazaar) lists and searches Purser's
// catalog. Run by crates/purser/tests/it/interop.rs; prints one JSON line.

import express from "express";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { wrapFetchWithPayment } from "@x402/fetch";
import { declareDiscoveryExtension, withBazaar } from "@x402/extensions/bazaar";

import { attempt, facilitator, payingClient, run, settings } from "./common.mjs";

function listen(app) {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, "127.0.0.1", (error) => {
      if (error) return reject(error);
      resolve({ server, base: `http://127.0.0.1:${server.address().port}` });
    });
    server.on("error", reject);
  });
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
        "GET /forecast/:day": {
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
          description: "Hourly precipitation forecast for a city",
          mimeType: "application/json",
          serviceName: "Interop Weather",
          tags: ["weather"],
          extensions: {
            ...declareDiscoveryExtension({
              input: { city: "Lisbon" },
              inputSchema: {
                properties: { city: { type: "string" }, postcode: { type: "string" } },
                required: ["city"],
              },
              output: { example: { city: "Lisbon", rainMillimetres: 2 } },
            }),
          },
        },
      },
      resourceServer,
    ),
  );
  app.get("/forecast/:day", (request, response) =>
    response.json({ city: request.query.city, day: request.params.day, rainMillimetres: 2 }),
  );

  const { server, base } = await listen(app);
  try {
    const { client } = payingClient(s);
    const payFetch = wrapFetchWithPayment(fetch, client);
    const paid = await payFetch(`${base}/forecast/monday?city=Lisbon`);
    const paidStatus = paid.status;
    await paid.arrayBuffer();

    // The discovery client, anonymous: the catalog is public.
    const discovery = withBazaar(new HTTPFacilitatorClient({ url: s.facilitatorUrl }));
    const listed = await discovery.extensions.bazaar.listResources({ type: "http", limit: 10 });
    const byNetwork = await discovery.extensions.bazaar.listResources({
      network: s.network,
      extensions: "bazaar",
      limit: 10,
      offset: 0,
    });
    const searched = await discovery.extensions.bazaar.search({ query: "precipitation", limit: 5 });
    const byField = await discovery.extensions.bazaar.search({ query: "postcode" });
    const merchant = await discovery.extensions.bazaar.search({ query: "translation", type: "http" });
    const malformed = await attempt(() =>
      discovery.extensions.bazaar.listResources({ limit: 1000 }),
    );
    return { paidStatus, base, listed, byNetwork, searched, byField, merchant, malformed };
  } finally {
    server.close();
  }
});
