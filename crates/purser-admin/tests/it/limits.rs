//! Every dimension of a GraphQL request is bounded before async-graphql parses or validates it
//! (`GraphqlLimits`): these documents crashed the process (a stack overflow in the recursive
//! parser aborts it, whatever catches panics) or held a worker for minutes (validation expands
//! fragments synchronously), unauthenticated. Each is sent to a real server on a TCP port, and
//! must be refused at once with its code while the server goes on serving.
//!
//! The time bounds only tell a refusal from a hang of minutes; they are not benchmarks.

use std::time::{Duration, Instant};

use http::StatusCode;
use purser_admin::GraphqlLimits;
use purser_http::layers::HttpLimits;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::api::TestApi;

/// Far above what any refusal takes, far below the minutes the attacks took.
const QUICKLY: Duration = Duration::from_secs(10);

/// The admin API on a TCP port, behind the layers every Purser router has (body limit,
/// timeout, panic containment), in a runtime of its own with two workers on a thread of its
/// own, as a separate server process would be: a server stuck on a request then cannot stall
/// this test's client, whose time limit fails the test instead of hanging it.
struct Server {
    client: Client,
    /// Dropped with the server: a graceful shutdown, and the test database dropped after it.
    shutdown: Option<oneshot::Sender<()>>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(GraphqlLimits::default()).await
    }

    async fn start_with(limits: GraphqlLimits) -> Self {
        let (started, base) = oneshot::channel();
        let (shutdown, stop) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the server's runtime");
            runtime.block_on(async move {
                let api = TestApi::start_with_limits(limits).await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let _ = started.send(format!("http://{}", listener.local_addr().unwrap()));
                let router = purser_http::layers::apply(api.router(), HttpLimits::default());
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.await;
                    })
                    .await;
            });
            let _ = stopped_tx.send(());
        });
        Self {
            client: Client {
                base: base.await.expect("the server started"),
                http: purser_testkit::http_client(),
            },
            shutdown: Some(shutdown),
            stopped,
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Give a stopping server time to drop its database; never wait on a stuck one.
        drop(self.shutdown.take());
        let _ = self.stopped.recv_timeout(QUICKLY);
    }
}

#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Posts `body` (JSON) to `/graphql` without a key; answers the status and the JSON answer.
    async fn post(&self, body: String) -> (StatusCode, Value) {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/graphql", self.base))
            .header("content-type", "application/json")
            .body(body)
            .timeout(QUICKLY)
            .send()
            .await
            .unwrap_or_else(|err| panic!("no answer within {QUICKLY:?}: {err}"));
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let bytes = response.bytes().await.expect("the answer's body");
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
        assert!(
            started.elapsed() < QUICKLY,
            "answered after {:?}",
            started.elapsed()
        );
        (status, body)
    }

    async fn query(&self, query: &str) -> (StatusCode, Value) {
        self.post(json!({ "query": query }).to_string()).await
    }

    /// The document must be refused with 400 and `code`; answers the message.
    async fn refused(&self, query: &str, code: &str) -> String {
        let (status, body) = self.query(query).await;
        refusal(status, &body, code)
    }

    /// An ordinary request still gets its answer.
    async fn alive(&self) {
        let (status, body) = self.query("{ __typename }").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["__typename"], "Query", "{body}");
    }
}

/// Asserts the answer is the handler's error shape with `code` and 400; answers the message.
#[track_caller]
fn refusal(status: StatusCode, body: &Value, code: &str) -> String {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], code, "{body}");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    errors[0]["message"].as_str().unwrap().to_owned()
}

/// `depth` levels of `open`, `innermost`, then as many `close`.
fn nested(open: &str, innermost: &str, close: &str, depth: usize) -> String {
    format!("{}{innermost}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_documents_are_refused_and_the_process_lives() {
    let server = Server::start().await;
    // A few hundred levels overflowed a worker's 2 MiB stack and aborted the process (this
    // test binary with it); 100,000 was refused by the parser's own stack guard (pest's),
    // which trips only when less than 64 KiB of stack is left.
    for depth in [500, 100_000, 40, 1_000, 5_000] {
        let documents = [
            format!(
                "{{ tenants(first: {}) {{ nodes {{ id }} }} }}",
                nested("[", "1", "]", depth)
            ),
            format!(
                "{{ tenants(first: {}) {{ nodes {{ id }} }} }}",
                nested("{a:", "1", "}", depth)
            ),
            format!(
                "{{ __typename @skip(if: {}) }}",
                nested("[{a:", "1", "}]", depth)
            ),
            format!(
                "query($v: {}) {{ __typename }}",
                nested("[", "Int", "]", depth)
            ),
            format!(
                "query($v: Int = {}) {{ __typename }}",
                nested("{a:", "1", "}", depth)
            ),
            nested("{ viewer ", "{ keyId }", "}", depth),
        ];
        for document in &documents {
            let message = server.refused(document, "query_too_deep").await;
            assert!(message.contains("graphql.max_nesting"), "{message}");
        }
        server.alive().await;
    }
    // Under the bracket limit, a value is still held to the input depth.
    let message = server
        .refused(
            &format!(
                "{{ tenants(first: {}) {{ nodes {{ id }} }} }}",
                nested("[", "1", "]", 20)
            ),
            "query_too_deep",
        )
        .await;
    assert!(message.contains("graphql.max_input_depth"), "{message}");
}

/// Fragments `F0` to `F{levels}`, each spreading the next twice: 2^levels fields once expanded.
fn fragment_bomb(levels: usize) -> String {
    let mut document = String::from("query { ...F0 }\n");
    for level in 0..levels {
        let next = level + 1;
        document += &format!("fragment F{level} on Query {{ ...F{next} ...F{next} }}\n");
    }
    document += &format!("fragment F{levels} on Query {{ __typename }}\n");
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_bombs_are_refused_at_once_and_others_are_served_meanwhile() {
    let server = Server::start().await;
    let bomb = fragment_bomb(30);
    // Two bombs in flight held both of the server's workers; an ordinary request waited.
    let bombs: Vec<_> = (0..2)
        .map(|_| {
            let client = server.client.clone();
            let bomb = bomb.clone();
            tokio::spawn(async move { client.query(&bomb).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.alive().await;
    for bomb in bombs {
        let (status, body) = bomb.await.unwrap();
        let message = refusal(status, &body, "query_too_large");
        assert!(message.contains("graphql.max_fields"), "{message}");
    }
    // The same bomb never spread, and a cycle that doubles at every step.
    let unused = bomb.replace("query { ...F0 }", "query { __typename }");
    server.refused(&unused, "query_too_large").await;
    let cycle = "{ ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }";
    let message = server.refused(cycle, "graphql_validation_failed").await;
    assert!(message.contains("spreads itself"), "{message}");
    server.alive().await;
}

/// `count` aliases of `__typename`, which costs nothing in the complexity score.
fn aliases(count: usize) -> String {
    (0..count).map(|i| format!("a{i}:__typename ")).collect()
}

#[tokio::test]
async fn aliases_fields_tokens_and_bytes_are_bounded() {
    let server = Server::start().await;
    // 5,000 aliases: over the document limits before the alias count is even taken.
    server
        .refused(&format!("{{ {} }}", aliases(5_000)), "query_too_large")
        .await;
    // 250 aliases, spread from one fragment of 50.
    let message = server
        .refused(
            &format!(
                "{{ ...A ...A ...A ...A ...A }} fragment A on Query {{ {} }}",
                aliases(50)
            ),
            "query_too_large",
        )
        .await;
    assert!(message.contains("graphql.max_aliases"), "{message}");
    // 2,100 fields from a fragment of 100 spread 21 times.
    let spreads = "...A ".repeat(21);
    let fields = "__typename ".repeat(100);
    let message = server
        .refused(
            &format!("{{ {spreads} }} fragment A on Query {{ {fields} }}"),
            "query_too_large",
        )
        .await;
    assert!(message.contains("graphql.max_fields"), "{message}");
    // 12,000 tokens in 24 KB.
    let message = server
        .refused(&format!("{{ {} }}", "a ".repeat(12_000)), "query_too_large")
        .await;
    assert!(message.contains("graphql.max_tokens"), "{message}");
    // A megabyte of tokens, just under the body limit: refused at the 10,001st.
    let megabyte = format!("{{ {} }}", "a ".repeat(500_000));
    let body = json!({ "query": megabyte }).to_string();
    assert!(body.len() > 1_000_000 && body.len() < 1024 * 1024);
    let (status, answer) = server.post(body).await;
    let message = refusal(status, &answer, "query_too_large");
    assert!(message.contains("graphql.max_tokens"), "{message}");
    // A megabyte in few tokens: one block string.
    let string = format!(r#"{{ a(b: """{}""") }}"#, "x".repeat(1_000_000));
    let message = server.refused(&string, "query_too_large").await;
    assert!(message.contains("graphql.max_document_bytes"), "{message}");
    server.alive().await;

    // With the document limits raised, the 5,000 aliases meet their own.
    let server = Server::start_with(GraphqlLimits {
        max_document_bytes: 1024 * 1024,
        max_tokens: 100_000,
        max_fields: 10_000,
        ..GraphqlLimits::default()
    })
    .await;
    let message = server
        .refused(&format!("{{ {} }}", aliases(5_000)), "query_too_large")
        .await;
    assert!(message.contains("graphql.max_aliases"), "{message}");
    assert!(message.contains("200"), "{message}");
}

#[tokio::test]
async fn operations_fragments_and_directives_are_bounded() {
    let server = Server::start().await;
    // 1,000 operations, one of them named to run.
    let operations: String = (0..1_000)
        .map(|i| format!("query Q{i} {{ __typename }}\n"))
        .collect();
    let (status, body) = server
        .post(json!({ "query": operations, "operationName": "Q0" }).to_string())
        .await;
    let message = refusal(status, &body, "query_too_large");
    assert!(message.contains("graphql.max_operations"), "{message}");
    // 101 fragments, all spread.
    let spreads: String = (0..101).map(|i| format!("...F{i} ")).collect();
    let fragments: String = (0..101)
        .map(|i| format!("fragment F{i} on Query {{ __typename }}\n"))
        .collect();
    let message = server
        .refused(&format!("{{ {spreads} }} {fragments}"), "query_too_large")
        .await;
    assert!(message.contains("graphql.max_fragments"), "{message}");
    // Directive spam: 100 on one field, and 60 spread over fields that have one each.
    let message = server
        .refused(
            &format!("{{ __typename {} }}", "@skip(if: false) ".repeat(100)),
            "query_too_large",
        )
        .await;
    assert!(message.contains("graphql.max_directives"), "{message}");
    let fields: String = (0..60)
        .map(|i| format!("a{i}: __typename @include(if: true) "))
        .collect();
    let message = server
        .refused(&format!("{{ {fields} }}"), "query_too_large")
        .await;
    assert!(message.contains("graphql.max_directives"), "{message}");
    server.alive().await;
}

/// A request body with `variables` written as given (variables the document does not declare
/// are ignored, once read).
fn with_variables(variables: &str) -> String {
    format!(r#"{{"query": "{{ __typename }}", "variables": {variables}}}"#)
}

#[tokio::test]
async fn variables_are_bounded_in_depth_and_size() {
    let server = Server::start().await;
    // Thirty-two levels, the object itself the first, pass.
    let (status, body) = server
        .post(with_variables(&format!(
            r#"{{"x": {}}}"#,
            nested("[", "1", "]", 31)
        )))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    // Deeper, whether serde_json (128 levels) would read it or not.
    for depth in [32, 100, 127, 200, 100_000] {
        let (status, body) = server
            .post(with_variables(&format!(
                r#"{{"x": {}}}"#,
                nested("[", "1", "]", depth)
            )))
            .await;
        let message = refusal(status, &body, "query_too_large");
        assert!(message.contains("graphql.max_variables_depth"), "{message}");
        let (status, body) = server
            .post(with_variables(&format!(
                r#"{{"x": {}}}"#,
                nested(r#"{"a":"#, "1", "}", depth)
            )))
            .await;
        refusal(status, &body, "query_too_large");
    }
    // `extensions` is held to the same depth.
    let (status, body) = server
        .post(format!(
            r#"{{"query": "{{ __typename }}", "extensions": {}}}"#,
            nested(r#"{"a":"#, "1", "}", 100)
        ))
        .await;
    refusal(status, &body, "query_too_large");
    // Huge: 20,000 values in a list, and 20,000 members of an object.
    let list = json!({ "x": vec![0; 20_000] }).to_string();
    let (status, body) = server.post(with_variables(&list)).await;
    let message = refusal(status, &body, "query_too_large");
    assert!(message.contains("graphql.max_variables_nodes"), "{message}");
    let members: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("k{i}"), json!(true)))
        .collect();
    let (status, body) = server
        .post(with_variables(&Value::Object(members).to_string()))
        .await;
    refusal(status, &body, "query_too_large");
    server.alive().await;
}

/// The introspection query GraphiQL sends (graphql-js's `getIntrospectionQuery`), with every
/// option on and graphql-js 17's `typeDepth` of 9, the largest any version sends.
fn graphiql_introspection_query() -> String {
    let mut type_ref = String::new();
    for _ in 0..9 {
        type_ref += "ofType { name kind ";
    }
    type_ref += &"}".repeat(9);
    format!(
        r#"
    query IntrospectionQuery {{
      __schema {{
        description
        queryType {{ name kind }}
        mutationType {{ name kind }}
        subscriptionType {{ name kind }}
        types {{
          ...FullType
        }}
        directives {{
          name
          description
          isRepeatable
          locations
          args(includeDeprecated: true) {{
            ...InputValue
          }}
        }}
      }}
    }}

    fragment FullType on __Type {{
      kind
      name
      description
      specifiedByURL
      isOneOf
      fields(includeDeprecated: true) {{
        name
        description
        args(includeDeprecated: true) {{
          ...InputValue
        }}
        type {{
          ...TypeRef
        }}
        isDeprecated
        deprecationReason
      }}
      inputFields(includeDeprecated: true) {{
        ...InputValue
      }}
      interfaces {{
        ...TypeRef
      }}
      enumValues(includeDeprecated: true) {{
        name
        description
        isDeprecated
        deprecationReason
      }}
      possibleTypes {{
        ...TypeRef
      }}
    }}

    fragment InputValue on __InputValue {{
      name
      description
      type {{ ...TypeRef }}
      defaultValue
      isDeprecated
      deprecationReason
    }}

    fragment TypeRef on __Type {{
      kind
      name
      {type_ref}
    }}
  "#
    )
}

#[tokio::test]
async fn graphiql_introspection_still_works_within_the_limits() {
    let server = Server::start().await;
    let (status, body) = server
        .post(
            json!({
                "query": graphiql_introspection_query(),
                "operationName": "IntrospectionQuery",
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 20);
}
