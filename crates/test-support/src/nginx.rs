//! nginx in front of a server under test: one worker on a free loopback port, its files in
//! a scratch folder, stopped by its PID when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::external::program;
use crate::process::{Proc, PROCESS_WAIT};
use crate::temp::TempDir;
use crate::wait::eventually_within;

/// A running nginx.
pub struct Nginx {
    proc: Proc,
    dir: TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Nginx {
    /// The nginx binary, or `None` (after a note) when it is missing and skipping was
    /// asked for.
    pub fn find() -> Option<PathBuf> {
        program("nginx", &["/usr/sbin"], "apt-get install nginx-light")
    }

    /// Starts `bin` with `http` as the directives of its `http` block, after the temporary
    /// paths; in it `{listen}` stands for the address to listen on and `{dir}` for its
    /// scratch folder (where `error.log` is, and `access.log` if `http` logs there).
    /// Returns once it accepts connections.
    pub fn start(bin: &Path, http: &str) -> Nginx {
        let dir = TempDir::new("tether-nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let d = dir.text().to_owned();
        // As root, the workers keep root's identity so that they can use the folder.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let http = http
            .replace("{listen}", &addr.to_string())
            .replace("{dir}", &d);
        let conf = format!(
            "{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http}
}}
"
        );
        let conf_path = dir.write("nginx.conf", conf);
        let proc = Proc::spawn(
            Command::new(bin)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut nginx = Nginx { proc, dir, addr };
        eventually_within(PROCESS_WAIT, "nginx listening", || {
            if let Ok(Some(status)) = nginx.proc.child().try_wait() {
                panic!("nginx exited ({status}); error log:\n{}", nginx.error_log());
            }
            TcpStream::connect(nginx.addr).is_ok()
        });
        nginx
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The lines of `access.log` in its folder so far.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (the child itself: no daemon), which stops its worker;
        // the Proc kills what is left when it drops.
        self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait_exit(PROCESS_WAIT);
    }
}
