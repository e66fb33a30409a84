//! A real nginx on 127.0.0.1 as an upstream that **normalises** request paths (it decodes
//! `%2e`, merges `//` and resolves `..` before it picks a location), the kind of upstream that
//! turns a gateway's path confusion into a bypass. Every answer names the location that served it
//! and the URI nginx saw: `location=<name> uri=<normalised uri>`.
//!
//! nginx comes from the system (`nginx` on the `PATH`, or `/usr/sbin/nginx`; `.ci/run` installs
//! Debian's `nginx-light`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped when dropped.
pub struct NginxUpstream {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for NginxUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> anyhow::Result<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nginx"])
        .output()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    if path.is_empty() {
        anyhow::bail!("nginx is not installed: apt-get install nginx-light (.ci/run does)");
    }
    Ok(path.into())
}

impl NginxUpstream {
    /// Starts nginx with one location per name (`/<name>/`) plus `/`, each answering 200
    /// `location=<name> uri=<uri>`.
    pub fn start(locations: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {d};\n  proxy_temp_path {d};\n  fastcgi_temp_path {d};\n  \
             uwsgi_temp_path {d};\n  scgi_temp_path {d};\n  \
             server {{\n    listen 127.0.0.1:{port};\n    default_type text/plain;\n",
            d = dir.path().display()
        );
        for name in locations {
            conf.push_str(&format!(
                "    location /{name}/ {{ return 200 \"location={name} uri=$uri\\n\"; }}\n"
            ));
        }
        conf.push_str("    location / { return 200 \"location=root uri=$uri\\n\"; }\n  }\n}\n");
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(nginx_binary()?)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                anyhow::bail!("nginx did not start on 127.0.0.1:{port}: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
