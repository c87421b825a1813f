// The x402 SDK's client signs a payment and the SDK's HTTPFacilitatorClient has Purser verify and
// settle it, with a resource_server key. Also exercises failures, which must come back as results
// (`isValid: false`, `success: false`, or the same success again), never as thrown errors.
// Run by crates/purser/tests/it/interop.rs; prints one JSON line.

import { attempt, facilitator, payingClient, requirements, run, settings } from "./common.mjs";

run(async () => {
  const s = settings();
  const fac = facilitator(s);
  const { client, account } = payingClient(s);

  const supported = await fac.getSupported();

  const accepted = requirements(s);
  const payload = await client.createPaymentPayload({
    x402Version: 2,
    resource: { url: "http://interop.test/paid", description: "interop", mimeType: "application/json" },
    accepts: [accepted],
  });

  // Requirements that ask for one unit more than was signed.
  const dearer = { ...accepted, amount: (BigInt(accepted.amount) + 1n).toString() };

  const result = {
    payer: account.address,
    supported,
    payload,
    verify: await attempt(() => fac.verify(payload, accepted)),
    verifyWrongAmount: await attempt(() => fac.verify(payload, dearer)),
    // Refused before anything is sent; the same authorization still settles afterwards.
    settleWrongAmount: await attempt(() => fac.settle(payload, dearer)),
  };
  result.settle = await attempt(() => fac.settle(payload, accepted));
  result.settleAgain = await attempt(() => fac.settle(payload, accepted));
  result.verifyAfterSettle = await attempt(() => fac.verify(payload, accepted));
  // Without a key, Purser answers 401, which the SDK throws.
  result.verifyWithoutKey = await attempt(() => facilitator(s, null).verify(payload, accepted));
  return result;
});
