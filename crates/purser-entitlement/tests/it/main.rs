//! Sign-In-With-X against a real chain (anvil): sign-ins made as clients make them, and every
//! way one can be wrong, each refused with its own code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::Address;
use alloy::signers::SignerSync as _;
use chrono::{Duration, SecondsFormat, Utc};
use purser_chain::config::{AssetConfig, RailConfig};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_coord::{MemoryCoordination, RedisCoordination};
use purser_devnet::{Devnet, DevnetChainSpec, DevnetOptions, TestAccount};
use purser_domain::ErrorCode;
use purser_domain::coord::Coordination;
use purser_domain::id::TenantId;
use purser_entitlement::siwx::message_of;
use purser_entitlement::{SignIn, SignInConfig};
use purser_x402::siwx::{self, SiwxOffer, SiwxPayload};

const URL: &str = "https://api.example.com/weather/lisbon";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Fixture {
    // The chain outlives the sign-in service that reads it.
    sign_in: SignIn,
    /// What `sign_in` keeps in coordination.
    coordination: Arc<MemoryCoordination>,
    rails: Arc<Rails>,
    devnet: Devnet,
    /// The merchant the sign-ins are for.
    tenant: TenantId,
}

impl Fixture {
    async fn start() -> Self {
        let devnet = Devnet::start(DevnetOptions {
            repo_root: Some(repo_root()),
            payer_accounts: 2,
            canonical_usdc: false,
            ..DevnetOptions::with_chains(vec![DevnetChainSpec::base_sepolia()])
        })
        .await
        .expect("start the devnet");
        let chain = &devnet.chains()[0];
        let token = chain.token();
        let rails = Rails::open(
            &[RailConfig {
                network: chain.network(),
                rpc_urls: vec![chain.rpc_url().to_owned()],
                confirmations: 1,
                receipt_timeout_seconds: 10,
                signers: vec![],
                assets: vec![AssetConfig {
                    address: token.address.to_checksum(None),
                    name: token.name.clone(),
                    version: token.version.clone(),
                    decimals: token.decimals,
                    symbol: None,
                    currency: "USD".to_owned(),
                }],
                erc6492_factories: vec![],
                ..Default::default()
            }],
            RpcPolicy::default(),
        )
        .await
        .expect("open the rail");
        let coordination = Arc::new(MemoryCoordination::new());
        let rails = Arc::new(rails);
        let sign_in = SignIn::new(coordination.clone(), rails.clone(), SignInConfig::default());
        Self {
            sign_in,
            coordination,
            rails,
            devnet,
            tenant: TenantId::new(),
        }
    }

    fn wallet(&self, i: usize) -> &TestAccount {
        &self.devnet.accounts().payers[i]
    }

    async fn offer(&self) -> SiwxOffer {
        self.sign_in.offer(self.tenant, URL).await.unwrap()
    }
}

/// What a client answers to `offer`: the fields it copies, signed by `key` as `address`.
fn answer(offer: &SiwxOffer, address: Address, key: &TestAccount) -> SiwxPayload {
    let info = &offer.info;
    let mut payload = SiwxPayload {
        domain: info.domain.clone(),
        address: address.to_checksum(None),
        statement: info.statement.clone(),
        uri: info.uri.clone(),
        version: info.version.clone(),
        chain_id: offer.supported_chains[0].chain_id.clone(),
        kind: offer.supported_chains[0].kind.clone(),
        nonce: info.nonce.clone(),
        issued_at: info.issued_at.clone(),
        expiration_time: info.expiration_time.clone(),
        not_before: info.not_before.clone(),
        request_id: info.request_id.clone(),
        resources: info.resources.clone(),
        signature_scheme: None,
        signature: String::new(),
    };
    sign(&mut payload, key);
    payload
}

fn sign(payload: &mut SiwxPayload, key: &TestAccount) {
    let text = message_of(payload).unwrap().to_string();
    let signature = key.signer().sign_message_sync(text.as_bytes()).unwrap();
    payload.signature = format!("0x{}", alloy::hex::encode(signature.as_bytes()));
}

fn time(offset_seconds: i64) -> String {
    (Utc::now() + Duration::seconds(offset_seconds)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn wallets_sign_in_once_per_nonce() {
    let fx = Fixture::start().await;
    let wallet = fx.wallet(0);
    let offer = fx.offer().await;
    assert_eq!(offer.info.domain, "api.example.com");
    assert_eq!(offer.supported_chains[0].chain_id, "eip155:84532");
    let header = siwx::encode(&answer(&offer, wallet.address(), wallet));
    let signed_in = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap();
    assert_eq!(signed_in.address, wallet.address());
    assert_eq!(signed_in.network, "eip155:84532");
    // The nonce is spent.
    let again = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::SignInNonceInvalid);
    // A URL under the signed one passes too (with a fresh nonce).
    let offer = fx.offer().await;
    let header = siwx::encode(&answer(&offer, wallet.address(), wallet));
    fx.sign_in
        .verify(
            &header,
            fx.tenant,
            &format!("{URL}/hourly?days=2"),
            Utc::now(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_wallets_sign_in_through_erc1271() {
    let fx = Fixture::start().await;
    let owner = fx.wallet(0);
    let wallet = fx.devnet.chains()[0]
        .deploy_smart_wallet(owner.address())
        .await
        .unwrap();
    let offer = fx.offer().await;
    let header = siwx::encode(&answer(&offer, wallet, owner));
    let signed_in = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap();
    assert_eq!(signed_in.address, wallet);
    // Another key's signature is not the wallet's.
    let offer = fx.offer().await;
    let header = siwx::encode(&answer(&offer, wallet, fx.wallet(1)));
    let refused = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SignInSignatureInvalid);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_sign_ins_are_refused_with_their_codes() {
    let fx = Fixture::start().await;
    let wallet = fx.wallet(0);
    type Bend = fn(&mut SiwxPayload);
    let cases: Vec<(&str, Bend, ErrorCode)> = vec![
        (
            "another domain",
            (|p| p.domain = "evil.example.com".into()),
            ErrorCode::SignInDomainMismatch,
        ),
        (
            "another URI",
            (|p| p.uri = "https://api.example.com/reports".into()),
            ErrorCode::SignInUriMismatch,
        ),
        (
            "issued six minutes ago",
            (|p| p.issued_at = time(-360)),
            ErrorCode::SignInStale,
        ),
        (
            "issued in the future",
            (|p| p.issued_at = time(60)),
            ErrorCode::SignInIssuedInFuture,
        ),
        (
            "expired",
            (|p| p.expiration_time = Some(time(-1))),
            ErrorCode::SignInExpired,
        ),
        (
            "not valid yet",
            (|p| p.not_before = Some(time(60))),
            ErrorCode::SignInNotYetValid,
        ),
        (
            "a nonce never issued",
            (|p| p.nonce = "NeverIssued0123".into()),
            ErrorCode::SignInNonceInvalid,
        ),
        (
            "an unsupported chain",
            (|p| p.chain_id = "eip155:1".into()),
            ErrorCode::SignInUnsupportedChain,
        ),
    ];
    for (what, bend, code) in cases {
        let offer = fx.offer().await;
        let mut payload = answer(&offer, wallet.address(), wallet);
        bend(&mut payload);
        // Re-signed, so only the bent field is wrong.
        sign(&mut payload, wallet);
        let refused = fx
            .sign_in
            .verify(&siwx::encode(&payload), fx.tenant, URL, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{what}: {refused}");
        assert!(
            !refused.message().contains(&payload.signature),
            "{what}: the signature is not echoed"
        );
    }

    // Signed by another key than the address's.
    let offer = fx.offer().await;
    let payload = answer(&offer, wallet.address(), fx.wallet(1));
    let refused = fx
        .sign_in
        .verify(&siwx::encode(&payload), fx.tenant, URL, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SignInSignatureInvalid);
    // The nonce of a refused sign-in is not spent: the right signature still gets in.
    let payload = answer(&offer, wallet.address(), wallet);
    fx.sign_in
        .verify(&siwx::encode(&payload), fx.tenant, URL, Utc::now())
        .await
        .unwrap();

    // Malformed headers and message fields.
    let offer = fx.offer().await;
    let good = answer(&offer, wallet.address(), wallet);
    let mut bad_address = good.clone();
    bad_address.address = "0x12".into();
    let mut bad_time = good.clone();
    bad_time.issued_at = "last tuesday".into();
    let mut bad_signature = good.clone();
    bad_signature.signature = "not hex".into();
    for (what, header) in [
        ("not base64", "%%%".to_owned()),
        ("not JSON", siwx::encode(&good)[..10].to_owned()),
        ("a bad address", siwx::encode(&bad_address)),
        ("a bad time", siwx::encode(&bad_time)),
        ("a bad signature", siwx::encode(&bad_signature)),
    ] {
        let refused = fx
            .sign_in
            .verify(&header, fx.tenant, URL, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            ErrorCode::MalformedSignIn,
            "{what}: {refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_are_good_for_their_merchant_once_whatever_the_concurrency() {
    let fx = Arc::new(Fixture::start().await);
    let wallet = fx.wallet(0);
    // Another merchant's challenge, answered: not good here.
    let elsewhere = fx.sign_in.offer(TenantId::new(), URL).await.unwrap();
    let header = siwx::encode(&answer(&elsewhere, wallet.address(), wallet));
    let refused = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SignInNonceInvalid);
    // One header, sixteen concurrent attempts: one gets in.
    let offer = fx.offer().await;
    let header = siwx::encode(&answer(&offer, wallet.address(), wallet));
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let (fx, header) = (fx.clone(), header.clone());
            tokio::spawn(async move {
                fx.sign_in
                    .verify(&header, fx.tenant, URL, Utc::now())
                    .await
                    .map_err(|e| e.code())
            })
        })
        .collect();
    let mut admitted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(code) => assert_eq!(code, ErrorCode::SignInNonceInvalid),
        }
    }
    assert_eq!(admitted, 1);
    // A few seconds of clock difference between instances are tolerated, more is not.
    let offer = fx.offer().await;
    let mut ahead = answer(&offer, wallet.address(), wallet);
    ahead.issued_at = time(10);
    sign(&mut ahead, wallet);
    fx.sign_in
        .verify(&siwx::encode(&ahead), fx.tenant, URL, Utc::now())
        .await
        .unwrap();
}

/// A key prefix of this test's own in the test Redis.
fn redis_prefix() -> String {
    format!("purser-test:siwx:{}:", TenantId::new())
}

async fn redis_coordination(prefix: &str) -> Arc<RedisCoordination> {
    match RedisCoordination::connect(&purser_testkit::redis_url(), prefix).await {
        Ok(coordination) => Arc::new(coordination),
        Err(err) => panic!(
            "these tests need Redis: set REDIS_URL or start one on 127.0.0.1:6379 ({})",
            err.chain()
        ),
    }
}

/// Every key under `prefix` in the test Redis, sorted.
fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(purser_testkit::redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut connection)
        .unwrap();
    keys.sort();
    keys
}

/// Anyone may ask for challenges: ten thousand of them store nothing per challenge, in process
/// or in Redis (only the one key every instance MACs nonces with).
#[tokio::test(flavor = "multi_thread")]
async fn offering_challenges_stores_nothing() {
    let rails = Arc::new(Rails::from_rails([]));
    let tenant = TenantId::new();
    let memory = Arc::new(MemoryCoordination::new());
    let prefix = redis_prefix();
    let redis = redis_coordination(&prefix).await;
    for (what, coordination) in [
        ("memory", memory.clone() as Arc<dyn Coordination>),
        ("redis", redis as Arc<dyn Coordination>),
    ] {
        let sign_in = SignIn::new(coordination, rails.clone(), SignInConfig::default());
        let mut nonces = std::collections::HashSet::new();
        for i in 0..10_000 {
            let offer = sign_in
                .offer(tenant, &format!("https://api.example.com/weather/{i}"))
                .await
                .unwrap();
            nonces.insert(offer.info.nonce);
        }
        assert_eq!(nonces.len(), 10_000, "{what}: every nonce is fresh");
    }
    assert_eq!(
        memory.key_count(),
        1,
        "the nonce key, and nothing per challenge"
    );
    assert_eq!(
        redis_keys(&prefix),
        vec![format!("{prefix}kv:siwx:nonce-mac-key")],
        "the nonce key, and nothing per challenge"
    );
}

/// A nonce is good only as issued: for its merchant and domain, unchanged, within its TTL, once;
/// anything else is `sign_in_nonce_invalid`, and a refused sign-in stores nothing.
#[tokio::test(flavor = "multi_thread")]
async fn nonces_are_good_only_as_issued_and_once() {
    let fx = Fixture::start().await;
    let wallet = fx.wallet(0);
    let refused = |payload: SiwxPayload, now| {
        let fx = &fx;
        async move {
            fx.sign_in
                .verify(&siwx::encode(&payload), fx.tenant, URL, now)
                .await
                .unwrap_err()
                .code()
        }
    };
    let bent = |bend: &dyn Fn(&mut SiwxPayload, &SiwxOffer), offer: &SiwxOffer| {
        let mut payload = answer(offer, wallet.address(), wallet);
        bend(&mut payload, offer);
        // Re-signed, so only the nonce is wrong.
        sign(&mut payload, wallet);
        payload
    };
    let other_merchant = fx.sign_in.offer(TenantId::new(), URL).await.unwrap();
    let other_domain = fx
        .sign_in
        .offer(fx.tenant, "https://other.example.com/weather/lisbon")
        .await
        .unwrap();
    type Bend<'a> = Box<dyn Fn(&mut SiwxPayload, &SiwxOffer) + 'a>;
    let flip = |nonce: &str, position: usize| {
        let mut bytes = nonce.as_bytes().to_vec();
        bytes[position] = if bytes[position] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    let cases: Vec<(&str, Bend)> = vec![
        (
            "another merchant's",
            Box::new(|p, _| p.nonce = other_merchant.info.nonce.clone()),
        ),
        (
            "another domain's",
            Box::new(|p, _| p.nonce = other_domain.info.nonce.clone()),
        ),
        (
            "its issue time changed",
            Box::new(move |p, _| p.nonce = flip(&p.nonce, 0)),
        ),
        (
            "its MAC changed",
            Box::new(move |p, _| p.nonce = flip(&p.nonce, p.nonce.len() - 1)),
        ),
        (
            "in upper case",
            Box::new(|p, _| p.nonce = p.nonce.to_ascii_uppercase()),
        ),
        (
            "never issued",
            Box::new(|p, _| p.nonce = "NeverIssued0123".into()),
        ),
    ];
    for (what, bend) in &cases {
        let offer = fx.offer().await;
        let code = refused(bent(bend.as_ref(), &offer), Utc::now()).await;
        assert_eq!(code, ErrorCode::SignInNonceInvalid, "a nonce {what}");
    }

    // Expired: a sign-in without an expiration time of its own (the client chooses what it
    // signs) is still bound by the nonce's TTL.
    let short = SignIn::new(
        fx.coordination.clone(),
        fx.rails.clone(),
        SignInConfig {
            nonce_ttl: std::time::Duration::from_secs(2),
            ..SignInConfig::default()
        },
    );
    let offer = short.offer(fx.tenant, URL).await.unwrap();
    let mut lasting = answer(&offer, wallet.address(), wallet);
    lasting.expiration_time = None;
    sign(&mut lasting, wallet);
    let header = siwx::encode(&lasting);
    let late = short
        .verify(&header, fx.tenant, URL, Utc::now() + Duration::seconds(4))
        .await
        .unwrap_err();
    assert_eq!(late.code(), ErrorCode::SignInNonceInvalid, "{late}");
    assert_eq!(
        fx.coordination.key_count(),
        1,
        "refused sign-ins store nothing: only the nonce key"
    );
    short
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap();
    // Used: refused on every instance sharing coordination.
    let again = fx
        .sign_in
        .verify(&header, fx.tenant, URL, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::SignInNonceInvalid);
    assert_eq!(fx.coordination.key_count(), 2, "the key and one used nonce");
}

/// Two instances over one Redis: each accepts the other's nonces, a nonce is used once across
/// them, and of concurrent uses on both one gets in. A used nonce is remembered no longer than
/// its lifetime.
#[tokio::test(flavor = "multi_thread")]
async fn instances_sharing_redis_accept_each_others_nonces_once() {
    let fx = Fixture::start().await;
    let wallet = fx.wallet(0);
    let prefix = redis_prefix();
    let instance = |coordination: Arc<RedisCoordination>| {
        SignIn::new(coordination, fx.rails.clone(), SignInConfig::default())
    };
    // Two connections, as two processes would have; both read the key at once.
    let (a, b) = (
        instance(redis_coordination(&prefix).await),
        instance(redis_coordination(&prefix).await),
    );
    let (offer_a, offer_b) = tokio::join!(a.offer(fx.tenant, URL), b.offer(fx.tenant, URL));
    // Issued by one, used at the other, replayed at the first.
    for (verifier, issuer, offer) in [(&b, &a, offer_a), (&a, &b, offer_b)] {
        let header = siwx::encode(&answer(&offer.unwrap(), wallet.address(), wallet));
        verifier
            .verify(&header, fx.tenant, URL, Utc::now())
            .await
            .unwrap();
        let replayed = issuer
            .verify(&header, fx.tenant, URL, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(replayed.code(), ErrorCode::SignInNonceInvalid);
    }
    // One header, sent to both instances at once, eight times each.
    let offer = a.offer(fx.tenant, URL).await.unwrap();
    let header = siwx::encode(&answer(&offer, wallet.address(), wallet));
    let attempts: Vec<_> = (0..16)
        .map(|i| {
            let sign_in = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (header, tenant) = (header.clone(), fx.tenant);
            tokio::spawn(async move {
                sign_in
                    .verify(&header, tenant, URL, Utc::now())
                    .await
                    .map_err(|e| e.code())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(_) | Err(ErrorCode::SignInNonceInvalid)))
    );
    // What Redis holds: the key and the three used nonces, each for what remains of its life.
    let keys = redis_keys(&prefix);
    assert_eq!(keys.len(), 4, "{keys:?}");
    let client = redis::Client::open(purser_testkit::redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    for key in keys.iter().filter(|k| k.contains("siwx:used:")) {
        let ttl_ms: i64 = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
        let most = (SignInConfig::default().nonce_ttl.as_millis() as i64)
            + purser_entitlement::siwx::CLOCK_LEEWAY_SECONDS * 1000;
        assert!(0 < ttl_ms && ttl_ms <= most, "{key}: {ttl_ms} ms");
    }
}
