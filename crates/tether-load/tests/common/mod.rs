//! Load runs for the tests: a config with short bounds, its run, and the check that its report
//! accounts for every connection and request. Servers come from `tether_test_support`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tether::{Builder, Running, Server};
use tether_load::{Config, Target};

/// A load config for `addr`: one thread, 300 ms, short timeout.
pub fn config(addr: SocketAddr, path: &str) -> Config {
    let mut c = Config::new(Target::parse(&format!("http://{addr}{path}")).expect("target"));
    c.threads = 1;
    c.connections = 4;
    c.bounds.duration = Duration::from_millis(300);
    c.timeout = Duration::from_secs(2);
    c
}

/// Runs `config` and returns its report.
pub fn run(config: &Config) -> tether_load::Report {
    tether_load::run(config, &mut |_| {}).expect("run")
}

/// Runs `config` and checks that its report accounts for every connection and request.
#[track_caller]
pub fn run_accounted(config: &Config) -> tether_load::Report {
    let r = run(config);
    assert_accounted(&r);
    r
}

/// Checks that every connection opened is accounted for by exactly one way of closing.
pub fn assert_accounted(r: &tether_load::Report) {
    let c = &r.connections;
    assert_eq!(
        c.opened,
        c.closed_by_server + c.reset_by_server + c.closed_by_client,
        "{c:?}"
    );
    assert_eq!(
        c.closed_by_server,
        c.closed_by_server_announced + c.closed_by_server_silently
    );
    assert_eq!(r.requests.total, r.requests.ok + r.requests.failed);
}

/// A tether server with one worker, configured by `build`, running the support crate's
/// `TestHandler`: `/plaintext` 200, `/status?code=N` N, anything else 404.
pub fn tether(build: impl FnOnce(Builder) -> Builder) -> Running {
    tether_test_support::server::start(build(Server::builder().workers(1)))
}
