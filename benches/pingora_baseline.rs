//! The yardstick for `benches/load.py`: the smallest Pingora reverse proxy, written the way Pingora's
//! own examples write one (one `ProxyHttp` with only `upstream_peer`, the default allocator, default
//! server settings). It measures what Pingora itself costs on this machine, so the load table can
//! separate Pingora's request path from what Portcullis adds on top of it.
//!
//! Usage: `cargo run --release --example pingora-baseline -- LISTEN UPSTREAM [THREADS [steal|nosteal]]`
//! (`nosteal` turns off work stealing: one single-threaded runtime per thread.)

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Baseline {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Baseline {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pingora-baseline LISTEN UPSTREAM [THREADS [steal|nosteal]]");
        std::process::exit(2);
    };
    let threads = args.get(2).and_then(|t| t.parse().ok());
    let conf = ServerConf {
        work_stealing: args.get(3).map(String::as_str) != Some("nosteal"),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(
        &server.configuration,
        Baseline {
            upstream: upstream.clone(),
        },
    );
    service.add_tcp(listen);
    service.threads = threads;
    server.add_service(service);
    server.run_forever();
}
