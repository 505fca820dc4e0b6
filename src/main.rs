//! The `portcullis` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

/// mimalloc: the gateway allocates many small, short-lived buffers per request from several
/// threads; it measured 10-20% cheaper in CPU than the system allocator. It is built with
/// `no_thp`: with transparent huge pages, each idle keep-alive connection cost 100 KB of RSS
/// instead of 44 KB (see benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::server::{prepare, prepare_with, Launch, StartError};
use portcullis::state::ConfigSource;

/// Portcullis: a reverse-proxy security gateway.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    ///
    /// Reloads on SIGHUP and when the config (or any file it references) changes; SIGTERM
    /// stops gracefully, SIGQUIT hands the listening sockets to a new process started with
    /// `--upgrade` (zero-downtime upgrade).
    Run {
        /// Path to gateway.yaml.
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
        /// Take over the listening sockets of the running instance (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
        /// Detach and run in the background (writes server.pid_file).
        #[arg(short, long)]
        daemon: bool,
    },
    /// Validate a config and every file it references; print every problem as
    /// `file:line:col: field.path: message` and exit 1 if there is any.
    Check {
        /// Path to gateway.yaml.
        #[arg(short, long, default_value = "gateway.yaml")]
        config: PathBuf,
    },
    /// Zero-config mode: a gateway in front of one backend with the default policy, no file needed.
    Proxy {
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: SocketAddr,
        /// Backend address, host:port.
        #[arg(long)]
        upstream: String,
        /// Admin listener for /metrics, /healthz and /readyz.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// WAF rule files or directories (default: the shipped rules).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// WAF paranoia level, 1 (fewest false positives) to 4.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
        paranoia: u8,
        /// Log and count what the WAF would block, without blocking.
        #[arg(long)]
        detect_only: bool,
        /// Run without the WAF.
        #[arg(long, conflicts_with_all = ["rules", "detect_only"])]
        no_waf: bool,
        /// Limit each client address to this rate: `10/s`, `600/m` or `10000/h`.
        #[arg(long, value_name = "N/UNIT")]
        rate_limit: Option<String>,
    },
    /// Run only the built-in echo backend (the demo's origin; also the origin of the benchmarks
    /// and corpus replays).
    Backend {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: SocketAddr,
    },
    /// Detection and false-positive rates on request corpora (../shared/corpora format).
    Corpus {
        #[command(subcommand)]
        command: cli::corpus::CorpusCommand,
    },
    /// Certificate tools.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// API-key tools.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// WAF rule tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Start the quick-start demo: the gateway with the demo config in front of a built-in echo
    /// backend, and print URLs and curl lines to try.
    Demo {
        /// Demo config to run.
        #[arg(short, long, default_value = "examples/demo/gateway.yaml")]
        config: PathBuf,
        /// Address of the built-in echo backend (must match the demo config's upstream).
        #[arg(long, default_value = "127.0.0.1:18080")]
        backend: SocketAddr,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a self-signed certificate and key for development (never for production).
    SelfSigned {
        /// DNS name or IP address the certificate is for (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Where to write the certificate (PEM).
        #[arg(long, default_value = "certs/dev-cert.pem")]
        cert: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long, default_value = "certs/dev-key.pem")]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh key once, and the keys.yaml entry (with its digest) to paste.
    New {
        /// Key id.
        #[arg(long)]
        id: String,
        /// Allowed route (repeatable).
        #[arg(long = "route")]
        routes: Vec<String>,
        /// Allowed path prefix (repeatable).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Allowed method (repeatable).
        #[arg(long = "method")]
        methods: Vec<String>,
        /// Rate-limit tier.
        #[arg(long)]
        tier: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Read a key on standard input and print its digest (sha256:...).
    Hash,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Show which rules match one request, and the score: `portcullis rules try "GET /?q=1'or'1'='1"`.
    Try {
        /// Request line, `METHOD /target`.
        line: String,
        /// A header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Request body.
        #[arg(short, long)]
        body: Option<String>,
        /// Rule files or directories (default: ./rules when it exists, else the shipped rules).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Paranoia level.
        #[arg(long, default_value_t = 4)]
        paranoia: u8,
    },
    /// Run every inline test (`tests:` of each rule) offline; report failures with rule id and
    /// file:line, exit 1 if any fails.
    Test {
        /// Rule files or directories (default: ./rules when it exists, else the shipped rules).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // rustls warns on every handshake whose SNI is an IP address (clients send those); the
    // handshake itself is counted in the TLS metrics, so only its errors are logged.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("portcullis=info,rustls=error,warn"),
    )
    .format_timestamp_millis()
    .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run {
            config,
            upgrade,
            daemon,
        } => run(
            Launch {
                source: ConfigSource::File(config),
                upgrade,
                daemon,
                sighup: true,
            },
            Vec::new(),
        ),
        Command::Check { config } => Ok(check(&config)),
        Command::Rules {
            command: RulesCommand::Test { rules },
        } => Ok(cli::rules::test(&rules)),
        Command::Rules {
            command:
                RulesCommand::Try {
                    line,
                    headers,
                    body,
                    rules,
                    paranoia,
                },
        } => Ok(cli::rules::try_request(
            &line, &headers, body, &rules, paranoia,
        )),
        Command::Corpus { command } => Ok(cli::corpus::run(command)),
        Command::Certs {
            command: CertsCommand::SelfSigned { names, cert, key },
        } => {
            portcullis::tls::certs::write_self_signed(&names, &cert, &key)
                .map_err(anyhow::Error::msg)?;
            println!(
                "wrote {} and {} for {} (self-signed: for development only)",
                cert.display(),
                key.display(),
                names.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => Ok(match command {
            KeysCommand::New {
                id,
                routes,
                paths,
                methods,
                tier,
                expires_at,
            } => cli::keys::new(
                &id,
                &routes,
                &paths,
                &methods,
                tier.as_deref(),
                expires_at.as_deref(),
            ),
            KeysCommand::Hash => cli::keys::hash(),
        }),
        Command::Backend { listen } => {
            // A test backend: stop at once on SIGTERM (Pingora's default grace is minutes).
            let conf = pingora::server::configuration::ServerConf {
                grace_period_seconds: Some(0),
                graceful_shutdown_timeout_seconds: Some(1),
                ..Default::default()
            };
            let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
            server.bootstrap();
            server.add_service(portcullis::demo::echo_service(&listen.to_string()));
            log::info!("listening backend on http://{listen}");
            server.run_forever();
        }
        Command::Proxy {
            listen,
            upstream,
            admin,
            rules,
            paranoia,
            detect_only,
            no_waf,
            rate_limit,
        } => run(
            Launch {
                source: ConfigSource::Inline {
                    name: PathBuf::from("<portcullis proxy>"),
                    text: cli::proxy::proxy_config(&cli::proxy::ProxyArgs {
                        listen,
                        upstream: &upstream,
                        admin,
                        rules: &rules,
                        paranoia,
                        detect_only,
                        no_waf,
                        rate_limit: rate_limit.as_deref(),
                    })?,
                },
                upgrade: false,
                daemon: false,
                sighup: true,
            },
            Vec::new(),
        ),
        Command::Demo { config, backend } => {
            let svc = portcullis::demo::echo_service(&backend.to_string());
            print_demo_banner(&config);
            run(
                Launch {
                    source: ConfigSource::File(config),
                    upgrade: false,
                    daemon: false,
                    sighup: true,
                },
                vec![Box::new(svc)],
            )
        }
    }
}

fn run(
    launch: Launch,
    extra: Vec<Box<dyn pingora::services::ServiceWithDependents>>,
) -> anyhow::Result<ExitCode> {
    let prepared = if extra.is_empty() {
        prepare(launch)
    } else {
        prepare_with(launch, extra)
    };
    match prepared {
        Ok(p) => {
            p.run();
            Ok(ExitCode::SUCCESS)
        }
        Err(StartError::Config(diags)) => {
            eprintln!("{diags}");
            eprintln!(
                "portcullis: the config has {} problem(s); not starting",
                diags.len()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("cannot start"),
    }
}

fn check(config: &std::path::Path) -> ExitCode {
    match portcullis::config::load(config, None) {
        Ok(cfg) => {
            println!(
                "ok: {}: {} listener(s), {} route(s), {} upstream(s)",
                config.display(),
                cfg.listeners.len(),
                cfg.routes.iter().count(),
                cfg.upstreams.len()
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            println!("{diags}");
            eprintln!("{}: {} problem(s)", config.display(), diags.len());
            ExitCode::FAILURE
        }
    }
}

fn print_demo_banner(config: &std::path::Path) {
    println!(
        "\nPortcullis demo ({})\n\
         \n  gateway   http://127.0.0.1:8080  and  https://127.0.0.1:8443 (self-signed: curl -k)\
         \n  admin     http://127.0.0.1:9090/metrics\
         \n\nTry:\
         \n  curl -i http://127.0.0.1:8080/hello            # proxied to the echo backend\
         \n  curl -i http://127.0.0.1:8080/api/items        # the 'api' route (longest prefix wins)\
         \n  curl -ik --http2 https://127.0.0.1:8443/hello  # HTTPS, HTTP/2 negotiated with ALPN\
         \n  curl -i -H 'Host: nowhere.example' http://127.0.0.1:8080/   # no route: 404 problem+json\
         \n  curl -i \"http://127.0.0.1:8080/search?q=1'%20or%20'1'='1\"  # SQL injection: 403, blocked by the WAF\
         \n  curl -i \"http://127.0.0.1:8080/search?q=O'Brien\"            # a near miss: passes\
         \n  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' http://127.0.0.1:8080/limited; done; echo\
         \n                                                 # rate limited: 5 per 10 s, then 429s\
         \n  curl -si http://127.0.0.1:8080/limited | grep -i -e ratelimit -e retry-after\
         \n  curl -i http://127.0.0.1:8080/private          # 401: an API key is required\
         \n  curl -i -H 'X-API-Key: demo-key-do-not-use-in-production' http://127.0.0.1:8080/private\
         \n                                                 # 200; the echo shows x-portcullis-key-id, not the key\
         \n  curl -s http://127.0.0.1:9090/metrics | grep portcullis_http_requests_total\
         \n\nEdit {} and save: the gateway reloads it; a broken edit is refused and logged.\
         \nAccess log lines (JSON) follow below; a blocked request's line has a \"waf\" field naming\
         \nthe rules that matched, the targets (e.g. args:q), the score and the mode. Ctrl-C stops.\n",
        config.display(),
        config.display()
    );
}
