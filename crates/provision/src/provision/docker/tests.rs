//! Tests of the engine check: a fake `docker` CLI on a temporary path, fake daemons on
//! temporary sockets, and the real CLI where there is one.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use super::test_support::{answer, fake_daemon};
use super::*;

/// The fake CLI's `context inspect`: the current context as docker/cli v29.7.2 picks it
/// (`resolveContextName`: a non-empty DOCKER_HOST, then DOCKER_CONTEXT, then the config's
/// current context, else `default`), printed as the real CLI (28.2.2) prints
/// `--format '{{json .}}'`. A context is a file `ctx/<name>` holding its host, `<name>.tls`
/// marks its TLS material, `current` is `currentContext`, `default-host` stands in for
/// `/var/run/docker.sock`; all under `$DOCKER_CONFIG`.
const INSPECT: &str = r#"c=$DOCKER_CONFIG; name=default; host=unix:///var/run/docker.sock
  [ -f "$c/default-host" ] && host=$(cat "$c/default-host")
  if [ -n "$DOCKER_HOST" ]; then host=$DOCKER_HOST
  else
    if [ -n "$DOCKER_CONTEXT" ]; then name=$DOCKER_CONTEXT
    elif [ -f "$c/current" ]; then name=$(cat "$c/current"); fi
    if [ "$name" != default ]; then
      [ -f "$c/ctx/$name" ] || { echo "context \"$name\": context not found: open $c/contexts/meta/x/meta.json: no such file or directory" >&2; exit 1; }
      host=$(cat "$c/ctx/$name")
    fi
  fi
  tls=; [ -f "$c/ctx/$name.tls" ] && tls='"docker":["ca.pem","cert.pem","key.pem"]'
  printf '{"Name":"%s","Endpoints":{"docker":{"Host":"%s","SkipTLSVerify":false}},"TLSMaterial":{%s}}\n' "$name" "$host" "$tls""#;

/// A fake home: the well-known sockets live under it, `run/` is `XDG_RUNTIME_DIR`,
/// `.docker` is `DOCKER_CONFIG`, and `bin/docker` is a fake CLI that logs each call's
/// arguments and DOCKER_* variables to `.docker/calls`.
struct Home(tempfile::TempDir);

impl Home {
    /// The fake CLI runs the shell `context` for `docker context …`, `info` for `docker info`.
    fn new(context: &str, info: &str) -> Self {
        let home = Self(tempfile::tempdir().unwrap());
        let script = format!(
            "#!/bin/sh\necho \"$*|$DOCKER_HOST|$DOCKER_CONTEXT|$DOCKER_TLS_VERIFY\" >> \"$DOCKER_CONFIG/calls\"\n\
             case \"$1\" in\ncontext) {context} ;;\ninfo) {info} ;;\nesac\n"
        );
        home.write("bin/docker", &script);
        std::fs::create_dir(home.path(".docker")).unwrap();
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(home.path("bin/docker"), mode).unwrap();
        home
    }
    /// A CLI that resolves as the real one and must not be asked `docker info`.
    fn emulating() -> Self {
        Self::new(INSPECT, "echo 'docker info must not be asked' >&2; exit 1")
    }
    fn path(&self, relative: &str) -> PathBuf {
        self.0.path().join(relative)
    }
    fn env(&self) -> EngineEnv {
        EngineEnv {
            home: Some(self.path("")),
            xdg_runtime_dir: Some(self.path("run")),
            docker_config: Some(self.path(".docker")),
            docker_cli: Some(self.path("bin/docker")),
            ..EngineEnv::default()
        }
    }
    fn write(&self, relative: &str, text: &str) {
        std::fs::create_dir_all(self.path(relative).parent().unwrap()).unwrap();
        std::fs::write(self.path(relative), text).unwrap();
    }
    fn calls(&self) -> String {
        std::fs::read_to_string(self.path(".docker/calls")).unwrap_or_default()
    }
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn docker_host_parsing() {
    use DockerEndpoint::*;
    let cases = [
        (
            "unix:///run/docker.sock",
            false,
            Unix("/run/docker.sock".into()),
        ),
        ("tcp://127.0.0.1:2375", false, Tcp("127.0.0.1:2375".into())),
        ("tcp://h:2375", true, ViaCli("tcp://h:2375".into())),
        ("tcp://h:2376/", false, ViaCli("tcp://h:2376".into())),
        ("ssh://me@host", false, ViaCli("ssh://me@host".into())),
    ];
    for (host, tls, endpoint) in cases {
        assert_eq!(parse_docker_host(host, tls), endpoint, "{host}");
    }
}

#[tokio::test]
async fn the_cli_is_asked_with_this_environments_docker_variables() {
    let home = Home::emulating();
    home.write(".docker/ctx/colima", "unix:///colima.sock");
    home.write(".docker/ctx/remote", "tcp://build.example:2375");
    home.write(".docker/ctx/remote.tls", "");
    home.write(".docker/current", "colima");
    let with = |host: Option<&str>, context: Option<&str>| EngineEnv {
        docker_host: host.map(String::from),
        docker_context: context.map(String::from),
        ..home.env()
    };
    let choose = |env: EngineEnv| async move { cli_choice(&env, LIMIT).await.unwrap() };

    let choice = choose(with(Some("tcp://h:2375"), Some("remote"))).await;
    assert_eq!(choice.endpoint, DockerEndpoint::Tcp("h:2375".into()));
    assert_eq!(
        (choice.origin.as_str(), choice.is_default),
        ("DOCKER_HOST", false)
    );
    let call = "context inspect --format {{json .}}|tcp://h:2375|remote|\n";
    assert!(home.calls().contains(call), "{}", home.calls());

    let choice = choose(with(None, Some("remote"))).await;
    assert_eq!(
        choice.endpoint,
        DockerEndpoint::ViaCli("tcp://build.example:2375".into())
    );
    assert_eq!(choice.origin, "Docker context \"remote\" (DOCKER_CONTEXT)");

    let choice = choose(home.env()).await;
    assert_eq!(choice.endpoint, DockerEndpoint::Unix("/colima.sock".into()));
    assert_eq!(
        choice.origin,
        "Docker context \"colima\" (the CLI's current context)"
    );
    assert!(!choice.is_default);

    std::fs::remove_file(home.path(".docker/current")).unwrap();
    let choice = choose(home.env()).await;
    assert_eq!(choice.endpoint, DockerEndpoint::Unix(DEFAULT_SOCKET.into()));
    assert!(choice.is_default, "{choice:?}");

    // DOCKER_TLS_VERIFY reaches the CLI, which then lists the certificates as TLS
    // material; without a CLI it decides by itself.
    let env = EngineEnv {
        docker_tls_verify: true,
        ..with(Some("tcp://h:2375"), None)
    };
    choose(env.clone()).await;
    assert!(
        home.calls().contains("|tcp://h:2375||1\n"),
        "{}",
        home.calls()
    );
    let choice = choose(EngineEnv {
        docker_cli: None,
        ..env
    })
    .await;
    assert_eq!(
        choice.endpoint,
        DockerEndpoint::ViaCli("tcp://h:2375".into())
    );
}

#[tokio::test]
async fn a_failing_or_hanging_cli_is_an_error_saying_so() {
    let home = Home::emulating();
    let env = EngineEnv {
        docker_context: Some("gone".into()),
        ..home.env()
    };
    let err = find_engine(&env, LIMIT).await.unwrap_err();
    assert!(
        err.contains("context \"gone\": context not found")
            && err.contains("meta.json")
            && err.contains("docker context use default"),
        "{err}"
    );
    let garbled = Home::new("echo 'not json'", "exit 1");
    let err = cli_choice(&garbled.env(), LIMIT).await.unwrap_err();
    assert!(
        err.contains("printed no context") && err.contains("\"not json\""),
        "{err}"
    );

    let hanging = Home::new("exec sleep 30", "exit 1");
    let started = Instant::now();
    let err = find_engine(&hanging.env(), Duration::from_millis(500))
        .await
        .unwrap_err();
    println!(
        "a hanging `docker context inspect` took {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.contains("did not finish within 500ms"), "{err}");
}

#[tokio::test]
async fn without_the_cli_docker_host_is_used_and_kind_is_refused() {
    let env = EngineEnv {
        docker_host: Some("unix:///somewhere/docker.sock".into()),
        ..EngineEnv::default()
    };
    let choice = cli_choice(&env, LIMIT).await.unwrap();
    assert_eq!(
        choice.endpoint,
        DockerEndpoint::Unix("/somewhere/docker.sock".into())
    );
    assert_eq!(
        (choice.origin.as_str(), choice.is_default),
        ("DOCKER_HOST", false)
    );
    let choice = cli_choice(&EngineEnv::default(), LIMIT).await.unwrap();
    assert!(choice.is_default && choice.origin.contains("no `docker` CLI on PATH"));

    let err = usable_by_kind(&env).unwrap_err();
    assert!(
        err.contains("no `docker` CLI on PATH") && err.contains("kind drives"),
        "{err}"
    );
    let podman = EngineEnv {
        kind_provider: Some("podman".into()),
        ..env
    };
    assert_eq!(usable_by_kind(&podman), Ok(()));
    assert_eq!(usable_by_kind(&Home::emulating().env()), Ok(()));
}

/// The fake's rules, checked against the real CLI where there is one (it needs no daemon).
#[tokio::test]
async fn the_real_docker_cli_resolves_as_cited() {
    let Some(cli) = which("docker") else {
        println!("skipped: no `docker` CLI on PATH to check the fake against");
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let env = |host: Option<&str>, context: Option<&str>| EngineEnv {
        docker_host: host.map(String::from),
        docker_context: context.map(String::from),
        docker_cli: Some(cli.clone()),
        docker_config: Some(config.path().to_path_buf()),
        ..EngineEnv::default()
    };
    let choice = cli_choice(&env(None, None), LIMIT).await.unwrap();
    assert_eq!(choice.endpoint, DockerEndpoint::Unix(DEFAULT_SOCKET.into()));
    assert!(choice.is_default);
    Cmd::new(&cli, LIMIT)
        .env("DOCKER_CONFIG", config.path())
        .args([
            "context",
            "create",
            "other",
            "--docker",
            "host=unix:///other.sock",
        ])
        .run()
        .await
        .unwrap();
    let current = r#"{"currentContext": "other"}"#;
    std::fs::write(config.path().join("config.json"), current).unwrap();
    let choice = cli_choice(&env(None, None), LIMIT).await.unwrap();
    assert_eq!(choice.endpoint, DockerEndpoint::Unix("/other.sock".into()));
    assert!(!choice.is_default);
    let err = cli_choice(&env(None, Some("gone")), LIMIT)
        .await
        .unwrap_err();
    assert!(err.contains("context \"gone\": context not found"), "{err}");
    let choice = cli_choice(&env(Some("tcp://h:2375"), Some("gone")), LIMIT)
        .await
        .unwrap();
    assert_eq!(choice.endpoint, DockerEndpoint::Tcp("h:2375".into()));
}

#[tokio::test]
async fn a_docker_host_pointing_at_nothing_fails_fast_and_names_it() {
    let home = Home::emulating();
    let missing = unix(&home.path("docker.sock"));
    // A TCP port that was just free: bind, note, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("tcp://127.0.0.1:{port}");
    for host in [missing, closed] {
        for docker_cli in [home.env().docker_cli, None] {
            let started = Instant::now();
            let env = EngineEnv {
                docker_host: Some(host.clone()),
                docker_cli,
                ..home.env()
            };
            let err = find_engine(&env, Duration::from_secs(2)).await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{host}: {:?}",
                started.elapsed()
            );
            let tried = format!("{host} from DOCKER_HOST: cannot connect");
            assert!(
                err.contains("no Docker daemon answered") && err.contains(&tried),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn tls_and_ssh_endpoints_are_asked_through_docker_info() {
    let ok = Home::new(INSPECT, "echo 29.4.2");
    for host in ["tcp://192.0.2.1:2376", "ssh://me@build.example"] {
        let env = EngineEnv {
            docker_host: Some(host.into()),
            ..ok.env()
        };
        let found = find_engine(&env, LIMIT).await.unwrap();
        assert_eq!(
            (found.endpoint.as_str(), found.origin.as_str()),
            (host, "DOCKER_HOST")
        );
        let call = format!("info --format {{{{.ServerVersion}}}}|{host}|");
        assert!(ok.calls().contains(&call), "{}", ok.calls());
    }
    let failing = Home::new(INSPECT, "echo 'error during connect' >&2; exit 1");
    let env = EngineEnv {
        docker_host: Some("tcp://192.0.2.1:2376".into()),
        ..failing.env()
    };
    let err = find_engine(&env, LIMIT).await.unwrap_err();
    assert!(
        err.contains("tcp://192.0.2.1:2376 is not a plain unix:// or tcp:// endpoint (TLS")
            && err.contains("`docker info`, asked instead, failed")
            && err.contains("error during connect"),
        "{err}"
    );
    let env = EngineEnv {
        docker_cli: None,
        ..env
    };
    let err = find_engine(&env, LIMIT).await.unwrap_err();
    assert!(
        err.contains("no `docker` CLI on PATH to ask instead"),
        "{err}"
    );
}

#[tokio::test]
async fn ping_asks_an_unversioned_ping_and_wants_a_200() {
    let home = Home::emulating();
    for (status, ok) in [("200 OK", true), ("500 Internal Server Error", false)] {
        let path = home.path(&format!("{}.sock", &status[..3]));
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let daemon =
            tokio::spawn(async move { answer(listener.accept().await.unwrap().0, status).await });
        let result = ping(&DockerEndpoint::Unix(path), LIMIT).await;
        assert_eq!(result.is_ok(), ok, "{status}: {result:?}");
        // Unversioned, so that a daemon of any API version answers it.
        assert_eq!(daemon.await.unwrap(), "GET /_ping HTTP/1.1");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { answer(listener.accept().await.unwrap().0, "200 OK").await });
    ping(&DockerEndpoint::Tcp(addr), LIMIT).await.unwrap();
}

#[tokio::test]
async fn a_silent_listener_is_bounded_by_the_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let _socket = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let started = Instant::now();
    let err = ping(&DockerEndpoint::Tcp(addr), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("no answer within 300ms"), "{err}");
    hold.abort();
}

#[tokio::test]
async fn a_context_endpoint_that_answers_is_used_as_it_is() {
    let home = Home::emulating();
    let sock = home.path(".colima/default/docker.sock");
    let daemon = fake_daemon(&sock);
    home.write(".docker/current", "colima");
    home.write(".docker/ctx/colima", &unix(&sock));
    let found = find_engine(&home.env(), LIMIT).await.unwrap();
    assert_eq!(found.endpoint, unix(&sock));
    assert!(found.origin.contains("\"colima\""), "{}", found.origin);
    assert_eq!(found.docker_host_for_kind, None, "the CLI finds it itself");
    daemon.abort();
}

#[tokio::test]
async fn without_a_context_the_first_well_known_socket_that_answers_stands_in() {
    let home = Home::emulating();
    // The CLI's default socket, absent here whatever this machine has.
    home.write(
        ".docker/default-host",
        &unix(&home.path("var-run-docker.sock")),
    );
    // Present but not answering: tried, and named in what was tried.
    home.write(".colima/default/docker.sock", "");
    let order = [
        (".rd/docker.sock", "Rancher Desktop"),
        (".orbstack/run/docker.sock", "OrbStack"),
        ("run/docker.sock", "rootless Docker"),
    ];
    let daemons: Vec<_> = order
        .iter()
        .map(|(p, _)| fake_daemon(&home.path(p)))
        .collect();
    for ((path, whose), daemon) in order.iter().zip(daemons) {
        let found = find_engine(&home.env(), LIMIT).await.unwrap();
        let host = unix(&home.path(path));
        assert_eq!(found.docker_host_for_kind.as_ref(), Some(&host));
        assert_eq!(found.endpoint, host);
        assert!(found.origin.contains(whose), "{}", found.origin);
        daemon.abort();
        std::fs::remove_file(home.path(path)).unwrap();
    }
    let err = find_engine(&home.env(), LIMIT).await.unwrap_err();
    assert!(
        err.contains("var-run-docker.sock from the Docker CLI's default context")
            && err.contains(".colima/default/docker.sock (the well-known socket of colima)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chosen_context_that_does_not_answer_is_not_silently_replaced() {
    let home = Home::emulating();
    let daemon = fake_daemon(&home.path(".orbstack/run/docker.sock"));
    home.write(".docker/ctx/dead", &unix(&home.path("dead.sock")));
    let env = EngineEnv {
        docker_context: Some("dead".into()),
        ..home.env()
    };
    let err = find_engine(&env, LIMIT).await.unwrap_err();
    assert!(
        err.contains("dead.sock") && err.contains("not tried") && err.contains(".orbstack"),
        "{err}"
    );
    daemon.abort();
}

#[test]
fn well_known_sockets_cover_the_common_engines() {
    let names: Vec<&str> = well_known_sockets(&Home::emulating().env())
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    for engine in [
        "Docker Desktop for Linux",
        "Docker Desktop (macOS)",
        "colima",
        "Rancher Desktop",
        "OrbStack",
        "rootless Docker",
        "podman (rootless)",
        "podman machine (macOS)",
    ] {
        assert!(names.contains(&engine), "{engine} missing from {names:?}");
    }
}

#[test]
fn kind_providers() {
    let with = |v: &str| EngineEnv {
        kind_provider: Some(v.into()),
        ..EngineEnv::default()
    };
    assert_eq!(provider(&EngineEnv::default()), (Provider::Docker, None));
    assert_eq!(provider(&with("podman")).0, Provider::Podman);
    assert_eq!(
        provider(&with("finch")).0,
        Provider::Nerdctl("finch".into())
    );
    let (p, warning) = provider(&with("lxc"));
    assert_eq!(p, Provider::Docker);
    assert!(warning.unwrap().contains("ignores"));
}

fn found(endpoint: String) -> EngineFound {
    EngineFound {
        provider: Provider::Docker,
        endpoint,
        origin: "Docker context \"colima\"".into(),
        docker_host_for_kind: None,
    }
}

#[test]
fn testcontainers_reads_no_context() {
    let home = Home::emulating();
    home.write(".docker/desktop/docker.sock", "");
    let env = home.env();
    // Only when /var/run/docker.sock is absent does testcontainers pick Docker Desktop's.
    if !Path::new(DEFAULT_SOCKET).exists() {
        let desktop = unix(&home.path(".docker/desktop/docker.sock"));
        assert_eq!(testcontainers_endpoint(&env).to_string(), desktop);
    }
    let colima = found("unix:///home/u/.colima/default/docker.sock".into());
    let problem = testcontainers_mismatch(&env, &colima).unwrap();
    let fix = "export DOCKER_HOST=unix:///home/u/.colima/default/docker.sock";
    assert!(problem.contains(fix), "{problem}");
    let same = found(testcontainers_endpoint(&env).to_string());
    assert_eq!(testcontainers_mismatch(&env, &same), None);
}

#[test]
fn a_symlinked_socket_is_the_same_daemon() {
    let home = Home::emulating();
    // Docker Desktop's layout: the per-user socket, and /var/run/docker.sock linking to it.
    let (real, link, other) = (
        home.path("run.sock"),
        home.path("link.sock"),
        home.path("c.sock"),
    );
    home.write("run.sock", "");
    home.write("c.sock", "");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let u = |p: &Path| DockerEndpoint::Unix(p.to_path_buf());
    assert!(same_endpoint(&u(&link), &u(&real)));
    assert!(!same_endpoint(&u(&link), &u(&other)));
    // Paths that do not exist are compared as written.
    assert!(!same_endpoint(
        &u(&home.path("a.sock")),
        &u(&home.path("b.sock"))
    ));
    let tcp = DockerEndpoint::Tcp("h:2375".into());
    assert!(same_endpoint(&tcp, &tcp.clone()));

    // testcontainers reaching the daemon through the link is no mismatch: the link and its
    // target are one endpoint.
    let env = EngineEnv {
        docker_host: Some(unix(&link)),
        ..EngineEnv::default()
    };
    assert_eq!(testcontainers_mismatch(&env, &found(unix(&real))), None);
    let problem = testcontainers_mismatch(&env, &found(unix(&other))).unwrap();
    let fix = format!("export DOCKER_HOST={}", unix(&other));
    assert!(problem.contains(&fix), "{problem}");
}
