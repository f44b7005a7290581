//! Debian's nginx, running the repository's `deploy/nginx.conf` with its upstreams pointed at the
//! test's `footfall` processes.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, wait_for};
use crate::http;

/// The nodes of `deploy/nginx.conf`'s upstreams, by the names it gives them.
#[derive(Clone, Copy)]
pub struct Upstreams {
    pub collect_1: u16,
    pub collect_2: u16,
    pub query: u16,
    pub admin: u16,
}

pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    upstreams: Upstreams,
}

/// `deploy/nginx.conf` as the test runs it: the same routes and retry rules, with the containers'
/// names replaced by local ports, and the paths a non-root prefix needs. The collect node on
/// `down` (if any) is marked `down`, as the README's rolling restart does before stopping it.
pub fn config(upstreams: &Upstreams, port: u16, dir: &Path, down: Option<u16>) -> String {
    let deployed = include_str!("../../deploy/nginx.conf");
    let d = dir.display();
    let collect = |name: &str, node: u16| {
        let mark = if down == Some(node) { " down" } else { "" };
        (format!("{name}:8000"), format!("127.0.0.1:{node}{mark}"))
    };
    let (c1, c1_to) = collect("collect-1", upstreams.collect_1);
    let (c2, c2_to) = collect("collect-2", upstreams.collect_2);
    let replaced = deployed
        .replace(&c1, &c1_to)
        .replace(&c2, &c2_to)
        .replace("query:8000", &format!("127.0.0.1:{}", upstreams.query))
        .replace("admin:8000", &format!("127.0.0.1:{}", upstreams.admin))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "http {",
            &format!(
                "http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;"
            ),
        );
    for name in ["collect-1:", "collect-2:", "query:", "admin:", "listen 80;"] {
        assert!(!replaced.contains(name), "deploy/nginx.conf: `{name}` left");
    }
    format!("user root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n{replaced}")
}

impl Nginx {
    /// Starts nginx in the foreground and waits until it proxies `/healthz`.
    pub fn start(upstreams: &Upstreams, log: &Path) -> Self {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nginx-{port}"));
        std::fs::create_dir_all(&dir).expect("nginx's directory");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(upstreams, port, &dir, None)).expect("nginx.conf");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("the log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx (apt-get install nginx): {e}"));
        let nginx = Self {
            child,
            port,
            dir,
            upstreams: *upstreams,
        };
        wait_for(
            "nginx to proxy /healthz",
            Duration::from_secs(20),
            || matches!(http::get(port, "/healthz"), Ok(a) if a.status == 200),
        );
        eprintln!("  nginx on 127.0.0.1:{port} ({})", conf.display());
        nginx
    }
}

impl Nginx {
    /// Marks the collect node on `port` down (or none), reloads, and waits until the workers of
    /// the old configuration have finished their requests, closed their connections and exited.
    pub fn mark_down(&self, port: Option<u16>) {
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, config(&self.upstreams, self.port, &self.dir, port))
            .expect("nginx.conf");
        let old = self.workers();
        let reloaded = Command::new(nginx_binary())
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf)
            .args(["-s", "reload"])
            .status()
            .expect("nginx -s reload");
        assert!(reloaded.success(), "nginx -s reload: {reloaded}");
        wait_for(
            "nginx's old workers to exit",
            Duration::from_secs(30),
            || {
                let now = self.workers();
                !now.is_empty() && now.iter().all(|pid| !old.contains(pid))
            },
        );
    }

    /// The master's worker processes.
    fn workers(&self) -> Vec<u32> {
        let out = Command::new("ps")
            .args(["--ppid", &self.child.id().to_string(), "-o", "pid="])
            .output()
            .expect("ps");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

impl Drop for Nginx {
    /// A graceful stop of the master, which takes its workers along (a SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
