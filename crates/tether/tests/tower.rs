//! An axum router with tower-http middleware behind `tether::tower`, over real loopback
//! sockets: the engine's connection management applies unchanged.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tether::{Builder, CloseReason, Running};
use tether_test_support::client::Client;
use tether_test_support::events::Events;
use tether_test_support::request as rq;
use tether_test_support::server::builder;
use tower_http::limit::RequestBodyLimitLayer;

const STREAM: [&str; 3] = ["one\n", "two\n", "three\n"];

fn router() -> Router {
    Router::new()
        .route("/plaintext", get(|| async { "Hello, World!" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/ignore", post(|| async { "ignored" }))
        .route(
            "/users/{id}",
            get(
                |Path(id): Path<u32>, Query(q): Query<Vec<(String, String)>>| async move {
                    format!("{id} {q:?}")
                },
            ),
        )
        .route(
            "/stream",
            get(|| async {
                let parts =
                    STREAM.map(|s| Ok::<_, std::io::Error>(Bytes::from_static(s.as_bytes())));
                Body::from_stream(futures_util::stream::iter(parts))
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::IM_A_TEAPOT, HeaderMap::new(), "short and stout") }),
        )
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let spawned = tokio::spawn(async { 41 + 1 }).await.unwrap_or(0);
                spawned.to_string()
            }),
        )
        .route(
            "/ws",
            get(|ws: axum::extract::ws::WebSocketUpgrade| async move {
                ws.on_upgrade(|_socket| async {})
            }),
        )
        .route(
            "/limited",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(RequestBodyLimitLayer::new(16)),
        )
}

/// Runs the router on one worker of `builder`.
fn start(builder: Builder) -> Running {
    let server = builder.bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    tether::tower::serve(server, router()).expect("serve")
}

#[test]
fn keep_alive_carries_many_requests_over_one_connection() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    for _ in 0..20 {
        let r = c.request(&rq::get("/plaintext"));
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
        assert!(!r.closes());
        assert_eq!(r.header("content-length"), Some("13"));
    }
    let s = srv.stats();
    assert_eq!((s.accepted, s.requests), (1, 20));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let mut batch = Vec::new();
    for id in 0..8 {
        batch.extend(rq::get(&format!("/users/{id}?x={id}")));
    }
    c.send(&batch);
    for id in 0..8 {
        let r = c.reply();
        assert_eq!(r.text(), format!("{id} [(\"x\", \"{id}\")]"));
    }
}

#[test]
fn bodies_reach_the_service_whatever_their_framing() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::post("/echo", b"hello, tower"));
    assert_eq!(r.body, b"hello, tower");
    let r = c.request(&rq::chunked_post("/echo", &[b"chunked ", b"pieces"]));
    assert_eq!(r.body, b"chunked pieces");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = c.request(&rq::post("/echo", &big));
    assert_eq!(r.body, big);
    assert!(!r.closes());
}

#[test]
fn continue_is_sent_only_when_the_service_reads_the_body() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::post_head("/echo", 5, &["Expect: 100-continue"]));
    assert_eq!(c.reply().status, 100);
    c.send(b"abcde");
    assert_eq!(c.reply().body, b"abcde");
    // A route that never reads: no 100, and the body the client holds back leaves the
    // connection with no safe way on.
    c.send(&rq::post_head("/ignore", 5, &["Expect: 100-continue"]));
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ignored"));
    assert!(r.closes());
}

#[test]
fn an_unread_body_within_the_drain_budget_keeps_the_connection() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::post("/ignore", &[b'x'; 1000]));
    assert_eq!(r.text(), "ignored");
    assert!(!r.closes());
    assert_eq!(c.request(&rq::get("/plaintext")).text(), "Hello, World!");
}

#[test]
fn a_body_over_the_engine_limit_is_413_and_a_close() {
    let srv = start(builder().max_body_size(1000));
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::post("/echo", &[b'x'; 5000]));
    assert_eq!(r.status, 413);
    assert!(r.closes());
    c.expect_closed();
}

#[test]
fn a_body_over_a_tower_http_limit_is_its_413() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::post("/limited", &[b'x'; 10]));
    assert_eq!(r.text(), "10");
    let r = c.request(&rq::post("/limited", &[b'x'; 100]));
    assert_eq!(r.status, 413);
}

#[test]
fn streamed_responses_are_chunked_on_http11_and_close_delimited_on_http10() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::get("/stream"));
    assert!(r.is_chunked(), "{r:?}");
    assert_eq!(r.text(), STREAM.concat());
    assert!(!r.closes());
    let r = c.request(&rq::get10("/stream", &["Connection: keep-alive"]));
    assert!(r.close_delimited, "{r:?}");
    assert_eq!(r.text(), STREAM.concat());
}

#[test]
fn head_announces_the_length_of_get_without_a_body() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::head("/plaintext"));
    let r = c.head_reply();
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(r.body.is_empty());
    assert_eq!(c.request(&rq::get("/plaintext")).text(), "Hello, World!");
}

#[test]
fn statuses_headers_and_runtime_work_pass_through() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::get("/fail"));
    assert_eq!((r.status, r.text()), (418, "short and stout"));
    let r = c.request(&rq::get("/sleep"));
    assert_eq!(r.text(), "42");
    assert_eq!(c.request(&rq::get("/nowhere")).status, 404);
    let r = c.request(&rq::build("DELETE", "/plaintext", &[], None));
    assert_eq!(r.status, 405);
}

#[test]
fn websocket_upgrades_are_refused_with_axums_426() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::build(
        "GET",
        "/ws",
        &[
            "Connection: upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        None,
    ));
    assert_eq!(r.status, 426, "{r:?}");
}

#[test]
fn the_engine_closes_for_its_own_reasons() {
    let events = Events::default();
    let srv = start(
        events.on(builder()
            .idle_timeout(Duration::from_millis(200))
            .idle_grace(Duration::ZERO)
            .max_requests(2)
            .limit_jitter(0.0)),
    );
    let mut idle = Client::connect(srv.local_addr());
    assert_eq!(idle.request(&rq::get("/plaintext")).status, 200);
    idle.expect_closed();
    events.closed_for(idle.peer(), CloseReason::IdleTimeout);

    let mut limited = Client::connect(srv.local_addr());
    assert!(!limited.request(&rq::get("/plaintext")).closes());
    assert!(limited.request(&rq::get("/plaintext")).closes());
    limited.expect_closed();
    events.closed_for(limited.peer(), CloseReason::MaxRequests);
}

#[test]
fn axums_connect_info_works_through_the_make_service() {
    let app = Router::new().route(
        "/ci",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let server = builder().bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve_make(
        server,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .expect("serve");
    let mut c = Client::connect(srv.local_addr());
    for _ in 0..3 {
        assert_eq!(c.request(&rq::get("/ci")).text(), c.peer().to_string());
    }
    assert_eq!(srv.stats().accepted, 1);
}

/// A service that is not `Send` (it holds an `Rc`), made on each worker.
#[derive(Clone, Default)]
struct Local {
    calls: std::rc::Rc<std::cell::Cell<u32>>,
}

impl tower_service::Service<http::Request<tether::tower::Body>> for Local {
    type Response = http::Response<String>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tether::tower::Body>) -> Self::Future {
        self.calls.set(self.calls.get() + 1);
        std::future::ready(match req.uri().path() {
            "/error" => Err(std::io::Error::other("the service failed")),
            _ => Ok(http::Response::new(format!("call {}", self.calls.get()))),
        })
    }
}

#[test]
fn services_that_are_not_send_run_on_their_worker() {
    let server = builder().bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve_with(server, Local::default).expect("serve");
    let mut c = Client::connect(srv.local_addr());
    assert_eq!(c.request(&rq::get("/")).text(), "call 1");
    assert_eq!(c.request(&rq::get("/")).text(), "call 2");
}

#[test]
fn a_service_error_is_500_and_a_close() {
    let events = Events::default();
    let server = events.on(builder()).bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve_with(server, Local::default).expect("serve");
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::get("/error"));
    assert_eq!(r.status, 500);
    assert!(r.closes());
    c.expect_closed();
    events.closed_for(c.peer(), CloseReason::HandlerError);
}

#[test]
fn a_body_error_before_the_head_is_500_and_after_it_a_cut_body() {
    let failing = |ok: usize| {
        get(move || async move {
            let parts = (0..ok)
                .map(|_| Ok(Bytes::from_static(b"part\n")))
                .chain([Err(std::io::Error::other("the body failed"))]);
            Body::from_stream(futures_util::stream::iter(parts))
        })
    };
    let app = Router::new()
        .route("/at-once", failing(0))
        .route("/midway", failing(2));
    let events = Events::default();
    let server = events.on(builder()).bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve(server, app).expect("serve");
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::get("/at-once"));
    assert_eq!(r.status, 500);
    assert!(r.closes());
    c.expect_closed();
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::get("/midway"));
    // The head and two chunks went out; then the connection ends without the last chunk.
    let raw = c.read_to_close().expect("read to the close");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("part\n"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body must not look complete: {text}"
    );
    events.closed_for(c.peer(), CloseReason::HandlerError);
}

/// A response body of one data frame and then trailer fields.
struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let frame = match self.data.take() {
            Some(data) => Some(http_body::Frame::data(data)),
            None => self.trailers.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

/// The data and the trailer fields of a request body.
async fn collect(body: Body) -> (Vec<u8>, Option<http::HeaderMap>) {
    let mut body = std::pin::pin!(body);
    let (mut data, mut trailers) = (Vec::new(), None);
    while let Some(frame) =
        std::future::poll_fn(|cx| http_body::Body::poll_frame(body.as_mut(), cx)).await
    {
        match frame.expect("a frame").into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    (data, trailers)
}

fn trailers_router() -> Router {
    Router::new()
        .route(
            "/sum",
            post(|req: axum::extract::Request| async move {
                let (data, trailers) = collect(req.into_body()).await;
                let sum = trailers
                    .as_ref()
                    .and_then(|t| t.get("x-sum"))
                    .map(|v| v.to_str().unwrap_or("?").to_owned());
                format!("{} bytes, x-sum {sum:?}", data.len())
            }),
        )
        .route(
            "/with-trailers",
            get(|| async {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("x-checksum", http::HeaderValue::from_static("42"));
                Body::new(WithTrailers {
                    data: Some(Bytes::from_static(b"payload")),
                    trailers: Some(trailers),
                })
            }),
        )
}

#[test]
fn request_trailers_reach_the_service_as_a_trailers_frame() {
    let server = builder().bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve(server, trailers_router()).expect("serve");
    let mut c = Client::connect(srv.local_addr());
    let mut req = rq::chunked_head("/sum");
    req.extend_from_slice(b"5\r\nhello\r\n3\r\nabc\r\n0\r\nX-Sum: 8\r\nX-Other: y\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.text(), "8 bytes, x-sum Some(\"8\")");
    let r = c.request(&rq::chunked_post("/sum", &[b"no", b"trailers"]));
    assert_eq!(r.text(), "10 bytes, x-sum None");
}

#[test]
fn response_trailers_go_out_only_to_a_client_that_asked() {
    let server = builder().bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve(server, trailers_router()).expect("serve");
    for (te, expect_trailer) in [(Some("TE: trailers"), true), (None, false)] {
        let mut c = Client::connect(srv.local_addr());
        let mut headers = vec!["Connection: close"];
        headers.extend(te);
        c.send(&rq::get_with("/with-trailers", &headers));
        let raw = c.read_to_close().expect("read to the close");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(text.contains("\r\n7\r\npayload\r\n"), "{text}");
        if expect_trailer {
            assert!(text.ends_with("\r\n0\r\nx-checksum: 42\r\n\r\n"), "{text}");
        } else {
            assert!(text.ends_with("\r\n0\r\n\r\n"), "{text}");
        }
    }
}
