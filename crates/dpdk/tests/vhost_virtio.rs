//! Two processes over vhost-user: this process owns a `net_vhost` port (the vhost-user
//! server socket), a child process (this test binary again) owns a `virtio_user` port
//! connected to it and sends 1 000 000 numbered frames at a bounded rate. Every frame must
//! arrive, in order, byte for byte. One #[test] per file: one EAL per process.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{Eal, EalArgs, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use anycast6_wire::PacketBuf;

const PACKETS: u64 = 1_000_000;
/// Sender rate cap (frames per second): bounded, and well inside what a shared 2-core
/// machine sustains, so the test measures correctness, not speed.
const RATE_PPS: u64 = 250_000;
const PAYLOAD: usize = 64;
const TEST_NAME: &str = "one_million_frames_cross_vhost_user_without_loss";
const CHILD_ENV: &str = "ANYCAST6_VHOST_CHILD_SOCKET";

/// Removes the vhost-user socket however the test ends.
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn one_million_frames_cross_vhost_user_without_loss() {
    match std::env::var(CHILD_ENV) {
        Ok(socket) => virtio_user_sender(&socket),
        Err(_) => vhost_receiver(),
    }
}

fn vhost_receiver() {
    let socket = std::env::temp_dir().join(format!("anycast6-vhost-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let _guard = SocketGuard(socket.clone());

    // Main lcore 0 here, 1 in the child: two busy-polling processes on different CPUs.
    let args = EalArgs::virtual_devices().lcores("0");
    let my_prefix = args.get_file_prefix().unwrap().to_owned();
    let eal = Eal::init(args.as_slice()).expect("EAL init");
    let pool = Arc::new(Mempool::new(&eal, "vhost_pool", 8191, 256, DEFAULT_DATA_ROOM).unwrap());
    let mut port = Port::open(&eal, &format!("net_vhost0,iface={}", socket.display())).unwrap();
    let mut queues = port.configure(&pool, &PortConfig::default()).unwrap();
    port.start().unwrap();
    assert!(socket.exists(), "net_vhost created the vhost-user socket");

    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the virtio_user child");
    let child_stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(child_stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut child_lines = Vec::new();

    let rx = &mut queues.rx[0];
    let mut burst = MbufBurst::<32>::new();
    let mut next = 0u64;
    let deadline = start + Duration::from_secs(50);
    while next < PACKETS {
        if Instant::now() > deadline {
            child_lines.extend(line_rx.try_iter());
            let _ = child.kill();
            panic!("{next} of {PACKETS} frames after 50 s; child said {child_lines:?}");
        }
        if rx.rx_burst(&mut burst) == 0 {
            if let Ok(Some(status)) = child.try_wait() {
                child_lines.extend(line_rx.try_iter());
                panic!("child exited early ({status}) at frame {next}: {child_lines:?}");
            }
            continue;
        }
        for m in burst.drain() {
            let frame = m.data();
            assert_eq!(
                common::frame_seq(frame),
                Some(next),
                "lost or reordered frame"
            );
            assert_eq!(
                frame,
                &common::ipv6_udp_frame(next, PAYLOAD)[..],
                "frame {next} corrupted"
            );
            next += 1;
        }
    }
    let elapsed = start.elapsed();
    // Nothing beyond the expected frames.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rx.rx_burst(&mut burst), 0, "extra frames arrived");
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, PACKETS);

    // Let the child go; it reports what it sent.
    child.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let status = child.wait().unwrap();
    child_lines.extend(line_rx.iter());
    assert!(status.success(), "child failed: {child_lines:?}");
    let child_prefix = child_lines
        .iter()
        // The child's harness prints "test NAME ... " before the closure's output.
        .find_map(|l| l.split_once("CHILD prefix ").map(|(_, prefix)| prefix))
        .unwrap_or_else(|| panic!("no prefix line from child: {child_lines:?}"));
    assert_ne!(
        child_prefix, my_prefix,
        "both processes need their own --file-prefix"
    );
    assert!(
        child_lines
            .iter()
            .any(|l| l.contains(&format!("CHILD sent {PACKETS}"))),
        "{child_lines:?}"
    );
    println!(
        "{PACKETS} frames over vhost-user in {:.2} s ({:.0} frames/s), zero loss",
        elapsed.as_secs_f64(),
        PACKETS as f64 / elapsed.as_secs_f64()
    );

    drop((queues, port));
    assert_eq!(pool.in_use(), 0);
}

fn virtio_user_sender(socket: &str) {
    let args = EalArgs::virtual_devices().lcores("1");
    println!("CHILD prefix {}", args.get_file_prefix().unwrap());
    let eal = Eal::init(args.as_slice()).expect("child EAL init");
    let pool = Arc::new(Mempool::new(&eal, "virtio_pool", 8191, 256, DEFAULT_DATA_ROOM).unwrap());
    let mut port = Port::open(&eal, &format!("virtio_user0,path={socket}")).unwrap();
    let mut queues = port.configure(&pool, &PortConfig::default()).unwrap();
    port.start().unwrap();
    assert!(
        port.wait_for_link(Duration::from_secs(10)).unwrap().up,
        "virtio_user link down"
    );

    let tx = &mut queues.tx[0];
    let mut burst = MbufBurst::<32>::new();
    let start = Instant::now();
    let mut next = 0u64;
    while next < PACKETS || !burst.is_empty() {
        // Token bucket: frames allowed so far at RATE_PPS.
        let allowed = (start.elapsed().as_micros() as u64 * RATE_PPS / 1_000_000).min(PACKETS);
        while next < allowed && !burst.is_full() {
            let frame = common::ipv6_udp_frame(next, PAYLOAD);
            burst.push(pool.alloc_from_slice(&frame).unwrap()).unwrap();
            next += 1;
        }
        // What the virtqueue did not take stays in `burst` and goes again next round.
        tx.tx_burst(&mut burst);
    }
    println!("CHILD sent {next}");
    // Keep the device (and the frames still in the virtqueue) until the receiver has all.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop((queues, port));
}
