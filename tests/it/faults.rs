//! Faults: a fault-injecting HTTP proxy on loopback in front of a real S3 server (moto)
//! fails one chosen request of a publish or a load, transiently (a 503, which the client
//! retries) or permanently (a 403 from then on). A transient fault changes nothing; a
//! permanent one fails the command with exit 1, leaves `LATEST` where it was and nothing
//! half-visible.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::ObjectStoreExt;

use super::harness::{runtime, Moto, Output, Project};

/// What the proxy does to request number `at` (counted from 0 since the last `reset`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Forward everything.
    None,
    /// Answer request `at` with 503 Slow Down, once.
    Transient { at: usize },
    /// Answer request `at` and every later one with 403 Forbidden.
    Permanent { at: usize },
}

struct FaultProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    count: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, c, l, s) = (fault.clone(), count.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (f, c, l) = (f.clone(), c.clone(), l.clone());
                        std::thread::spawn(move || {
                            let _ = handle(client, upstream, &f, &c, &l);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            port,
            fault,
            count,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn reset(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.count.store(0, Ordering::SeqCst);
        self.log.lock().unwrap().clear();
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: read it whole, fail it or forward it (one request per connection).
fn handle(
    mut client: TcpStream,
    upstream: u16,
    fault: &Mutex<Fault>,
    count: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let line = text.lines().next().unwrap_or_default().to_string();
    let n = count.fetch_add(1, Ordering::SeqCst);
    log.lock().unwrap().push(line);
    let status = match *fault.lock().unwrap() {
        Fault::Transient { at } if n == at => Some("503 Slow Down"),
        Fault::Permanent { at } if n >= at => Some("403 Forbidden"),
        _ => None,
    };
    if let Some(status) = status {
        let body =
            "<Error><Code>Injected</Code><Message>fault injected by the test</Message></Error>";
        write!(
            client,
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    let head: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end_matches("\r\n").to_string() + "\r\nConnection: close\r\n\r\n";
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

struct Setup {
    _moto: Moto,
    proxy: FaultProxy,
    store: Arc<dyn object_store::ObjectStore>,
    project: Project,
}

fn setup() -> Setup {
    let moto = Moto::start();
    moto.create_bucket("faults");
    let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let store = moto.store("faults");
    let project = Project::new();
    project
        .cohort(&["gen", "--customers", "2000", "--seed", "5", "--out", "."])
        .ok();
    project.write(
        "queries/adults.toml",
        "[[include]]\nconditions = [{ attribute = \"age\", op = \">=\", value = 18 }]\n",
    );
    project.write("queries/all.toml", "[[include]]\nconditions = []\n");
    Setup {
        _moto: moto,
        proxy,
        store,
        project,
    }
}

impl Setup {
    /// `cohort` through the proxy.
    fn cohort(&self, args: &[&str]) -> Output {
        let env: Vec<(String, String)> = [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.proxy.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.project.cohort_with_env(args, &env)
    }

    fn latest(&self) -> Option<String> {
        runtime().block_on(async {
            match self.store.get(&StorePath::from("snap/LATEST")).await {
                Ok(r) => Some(String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        })
    }

    /// A run with an `as_of` newer than every earlier one (so it would move `LATEST`).
    fn run(&self, n: u32) -> Output {
        self.cohort(&[
            "run",
            "--customers=customers.parquet",
            "--publish=s3://faults/snap",
            &format!("--as-of=2026-11-01T{:02}:{:02}:00Z", n / 60, n % 60),
        ])
    }

    fn check(&self) -> Output {
        self.cohort(&[
            "check",
            "adults",
            "7",
            "--publish=s3://faults/snap",
            "--format=json",
        ])
    }
}

#[test]
fn a_fault_at_any_request_of_a_publish_or_a_load_is_retried_or_fails_cleanly() {
    let s = setup();
    s.proxy.reset(Fault::None);
    s.run(1).ok();
    let first = s.latest().expect("published");
    let answer = s.check().ok().json()["member"].clone();

    // How many requests an undisturbed publish makes.
    s.proxy.reset(Fault::None);
    s.run(2).ok();
    let publish_requests = s.proxy.requests();
    assert!(publish_requests.len() >= 5, "{publish_requests:?}");
    let mut latest = s.latest().unwrap();
    assert_ne!(latest, first);

    // Past the write of LATEST the run is published: a permanent fault there (in the
    // check made afterwards) is only a warning.
    let pointed = publish_requests
        .iter()
        .position(|r| r.starts_with("PUT") && r.contains("/LATEST"))
        .expect("a publish writes LATEST");
    for (at, request) in publish_requests.iter().enumerate() {
        let n = 3 + 2 * at as u32;
        // Transient: retried, the publish succeeds and LATEST moves.
        s.proxy.reset(Fault::Transient { at });
        let out = s.run(n);
        assert_eq!(
            out.code, 0,
            "transient fault at {}: {}",
            request, out.stderr
        );
        latest = s.latest().unwrap();
        // Permanent: exit 1, LATEST unchanged, the run it names still loads.
        s.proxy.reset(Fault::Permanent { at });
        let out = s.run(n + 1);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        if at > pointed {
            assert_eq!(out.code, 0, "fault at {}: {}", request, out.stderr);
            assert_ne!(s.latest().unwrap(), latest);
        } else {
            assert_eq!(
                out.code, 1,
                "permanent fault at {}: {}",
                request, out.stderr
            );
            assert!(
                out.stderr.contains("s3://faults/snap"),
                "names the URL: {}",
                out.stderr
            );
            assert_eq!(
                s.latest().unwrap(),
                latest,
                "permanent fault at {}",
                request
            );
        }
        s.proxy.reset(Fault::None);
        assert_eq!(s.check().ok().json()["member"], answer);
    }

    s.proxy.reset(Fault::None);
    s.check().ok();
    let load_requests = s.proxy.requests();
    assert!(load_requests.len() >= 3, "{load_requests:?}");
    for (at, request) in load_requests.iter().enumerate() {
        s.proxy.reset(Fault::Transient { at });
        let out = s.check();
        assert_eq!(
            out.code, 0,
            "transient fault at {}: {}",
            request, out.stderr
        );
        assert_eq!(out.json()["member"], answer);
        s.proxy.reset(Fault::Permanent { at });
        let out = s.check();
        assert_eq!(
            out.code, 1,
            "permanent fault at {}: {}",
            request, out.stderr
        );
        assert!(out.stderr.contains("s3://faults/snap"), "{}", out.stderr);
    }
}
