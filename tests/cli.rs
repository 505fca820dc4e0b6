//! The `portcullis` binary: `check` golden outputs, `run` with SIGHUP reload, `proxy` zero-config,
//! `corpus replay` scoring a live gateway against its control.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn check(config: &str) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(["check", "--config", config])
        .current_dir(repo())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_reports_every_problem_with_its_location() {
    for name in ["broken-many", "broken-syntax"] {
        let (code, stdout, stderr) = check(&format!("tests/configs/{name}.yaml"));
        let golden =
            std::fs::read_to_string(repo().join(format!("tests/configs/{name}.out"))).unwrap();
        assert_eq!(code, 1, "{name}: {stderr}");
        assert_eq!(
            stdout, golden,
            "{name}: output differs from tests/configs/{name}.out"
        );
        assert!(stderr.contains("problem(s)"), "{stderr}");
    }
}

/// Path prefixes match without regard to case, so two routes whose prefixes differ only in case,
/// for the same hosts, would take the same requests: the second is refused. Other hosts may
/// reuse a prefix.
#[test]
fn check_refuses_routes_that_take_the_same_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - { name: main, address: 127.0.0.1:0 }\nupstreams:\n  u: { backends: [\"127.0.0.1:9\"] }\nroutes:\n  - { name: api, path_prefix: /api, upstream: u }\n  - { name: shop-api, hosts: [shop.example], path_prefix: /API, upstream: u }\n  - { name: legacy, path_prefix: /API/, upstream: u }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check(path.to_str().unwrap());
    assert_eq!(code, 1, "{stdout}{stderr}");
    let problems: Vec<&str> = stdout.lines().collect();
    assert_eq!(problems.len(), 1, "{stdout}");
    assert!(
        problems[0].ends_with(
            ":8:21: routes[2].path_prefix: route \"api\" already takes the requests of \"/API\" \
             for the same hosts (path prefixes match without regard to case)"
        ),
        "{stdout}"
    );
}

#[test]
fn check_accepts_good_configs_and_shipped_examples() {
    for cfg in ["tests/configs/good.yaml", "examples/demo/gateway.yaml"] {
        let (code, stdout, stderr) = check(cfg);
        assert_eq!(code, 0, "{cfg}: {stdout}{stderr}");
        assert!(stdout.starts_with("ok: "), "{stdout}");
    }
}

#[test]
fn help_explains_each_command() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["run", "check", "proxy", "demo"] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reloads_on_sighup_and_refuses_a_broken_change() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    let write = |upstream: &str, extra: &str| {
        write_atomically(
            &cfg,
            &format!(
                "server: {{ threads: 1 }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\naccess_log: {{ path: off }}\nreload: {{ watch: false }}\nupstreams:\n  a: {{ backends: [\"{}\"] }}\n  b: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: {upstream} }}\n{extra}",
                a.addr, b.addr
            ),
        )
    };
    write("a", "");
    let p = Process::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &["main", "admin"],
    );
    let url = format!("http://{}/", p.addr("main"));
    let cl = client();
    cl.get(&url).send().await.unwrap();
    assert_eq!((a.count(), b.count()), (1, 0));

    write("b", "");
    p.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "SIGHUP reload routes to b",
        || async {
            cl.get(&url).send().await.unwrap();
            b.count() > 0
        },
    )
    .await;

    write("a", "bogus: 1\n");
    p.signal("HUP");
    eventually(Duration::from_secs(10), "broken reload counted", || async {
        metric_value(
            &p.metrics().await,
            r#"portcullis_config_reloads_total{result="failure"}"#,
        ) == Some(1.0)
    })
    .await;
    let before = b.count();
    cl.get(&url).send().await.unwrap();
    assert_eq!(
        b.count(),
        before + 1,
        "the previous config (route to b) keeps serving"
    );
    // The child's stderr is read by another thread: give it a moment to arrive.
    let located = "gateway.yaml:12:1: bogus: unknown field `bogus`";
    eventually(
        Duration::from_secs(5),
        "the refusal logged with its location",
        || async { p.stderr().contains(located) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_needs_no_file() {
    let be = Backend::start("be");
    let upstream = be.addr.to_string();
    let p = Process::spawn(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--admin",
            "127.0.0.1:0",
        ],
        &["main", "admin"],
    );
    let r = client()
        .get(format!("http://{}/hello?x=1", p.addr("main")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().target, "/hello?x=1");
    assert!(p.metrics().await.contains("portcullis_build_info"));
}

#[test]
fn run_refuses_to_start_with_a_broken_config() {
    let out = Command::new(bin())
        .args(["run", "--config", "tests/configs/broken-syntax.yaml"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken-syntax.yaml:5:3: invalid YAML"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let slow = Backend::start("slow");
    slow.set_delay(Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server: {{ threads: 1, grace_period: 200ms, graceful_shutdown_timeout: 10s }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\naccess_log: {{ path: off }}\nreload: {{ watch: false }}\nupstreams:\n  a: {{ backends: [\"{}\"], read_timeout: 5s }}\nroutes:\n  - {{ name: r, upstream: a }}\n",
            slow.addr
        ),
    )
    .unwrap();
    let mut p = Process::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &["main", "admin"],
    );
    let url = format!("http://{}/slow", p.addr("main"));
    let in_flight = tokio::spawn(async move { client().get(&url).send().await });
    // Wait until the request is at the backend, then stop the gateway.
    eventually(Duration::from_secs(5), "request at the backend", || async {
        slow.count() == 1
    })
    .await;
    p.signal("TERM");
    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["connection"], "close");
    // The process ends once drained, well before its 10 s limit.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}\n{}", p.stderr());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the drain:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        p.stderr().contains("graceful shutdown: drained"),
        "{}",
        p.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_replay_scores_a_live_gateway_against_its_control() {
    let be = Backend::start("be");
    let upstream = be.addr.to_string();
    let proxy = |extra: &[&str]| {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream];
        args.extend_from_slice(extra);
        Process::spawn(&args, &["main"])
    };
    let waf = proxy(&[]);
    let control = proxy(&["--no-waf"]);
    let dir = tempfile::tempdir().unwrap();
    // Three attacks (one the rules cannot see), two benign requests (one the rules refuse) and
    // a record expected to be blocked only at paranoia 3, which a replay at 1 leaves out.
    let record = |id: &str, cat: &str, expect: &str, target: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","source":"t","category":"{cat}","expect":"{expect}","method":"GET","target":"{target}","headers":[]{extra}}}"#
        )
    };
    let corpus = [
        record(
            "a1",
            "sqli",
            "block",
            "/?q=1%27%20union%20select%20password%20from%20users--",
            "",
        ),
        record(
            "a2",
            "xss",
            "block",
            "/?q=%3Cscript%3Ealert(1)%3C/script%3E",
            "",
        ),
        record("a3", "xss", "block", "/?q=hello%20world", ""),
        record("b1", "benign", "pass", "/?q=select%20a%20plan", ""),
        record(
            "b2",
            "benign",
            "pass",
            "/?q=%3Cscript%3Ealert(2)%3C/script%3E",
            "",
        ),
        record("p3", "sqli", "block", "/?q=plain", r#","pl":3"#),
    ]
    .join("\n");
    let file = dir.path().join("t.jsonl");
    std::fs::write(&file, corpus + "\n").unwrap();
    let summary = dir.path().join("summary.json");
    let floors = dir.path().join("floors.json");
    let args: Vec<String> = [
        "corpus",
        "replay",
        file.to_str().unwrap(),
        "--url",
        &format!("http://{}", waf.addr("main")),
        "--control",
        &format!("http://{}", control.addr("main")),
        "--workers",
        "2",
        "--pl",
        "1",
        "--summary",
        summary.to_str().unwrap(),
        "--floors",
        floors.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    // Replays with a detection floor of `floor` (the false-positive ceiling is 0.6).
    let replay = move |floor: f64| {
        let args = args.clone();
        let floors = floors.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::write(
                &floors,
                format!(r#"{{"sources":{{"t":{{"min_tpr":{floor},"max_fpr":0.6}}}}}}"#),
            )
            .unwrap();
            Command::new(bin()).args(&args).output().unwrap()
        })
    };
    let out = replay(0.6).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let t = &s["report"]["sources"]["t"];
    assert_eq!(t["n"], 5, "{t}");
    assert_eq!(t["above_pl"], 1, "{t}");
    assert_eq!(
        (t["n_block"].clone(), t["tp"].clone()),
        (3.into(), 2.into()),
        "{t}"
    );
    assert_eq!(
        (t["n_pass"].clone(), t["tn"].clone()),
        (2.into(), 1.into()),
        "{t}"
    );
    assert_eq!(s["report"]["categories"]["t"]["xss"]["tp"], 1, "{s}");
    // The five scored records reached the backend through the control, and two (a3, b1)
    // through the WAF; the record above the paranoia level was not sent.
    assert_eq!(be.count(), 5 + 2);

    // Detection 2/3 is below a floor of 0.7: the replay fails.
    let out = replay(0.7).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
