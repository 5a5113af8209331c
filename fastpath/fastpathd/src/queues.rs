//! Which worker polls which rx queue of which port. fastpathd binds every
//! rx queue of every port it drives (DESIGN.md §7, "nothing passes by
//! accident"): a queue without an AF_XDP socket would leave its transit
//! frames to the XDP program's fallback (dropped and counted since the
//! program fails closed, but not forwarded). A port it cannot cover is
//! refused at start, naming the `ethtool -L` command that fixes it.

/// Most rx queues of a port (the size of the XDP program's `xsks` map).
pub(crate) const MAX_QUEUES: u32 = 64;

/// A port as the queue plan sees it: its name and rx queue count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortQueues {
    pub(crate) name: String,
    pub(crate) rx_queues: u32,
}

/// The rx queues of each port (`plan[port]`): every queue gets a socket.
/// `expected` is `--queues`, when given.
pub(crate) fn plan(ports: &[PortQueues], workers: usize, expected: Option<u32>) -> Result<Vec<u32>, String> {
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let (name, q) = (&p.name, p.rx_queues);
        if let Some(n) = expected.filter(|n| *n != q) {
            return Err(format!(
                "port {name} has {q} rx queue(s) but --queues {n} was given: fastpathd binds every queue; \
                 run `ethtool -L {name} combined {n}` (or `ethtool -L {name} rx {n} tx {n}`), or drop --queues"
            ));
        }
        if (q as usize) < workers {
            return Err(format!(
                "port {name} has {q} rx queue(s), fewer than --workers {workers} (every worker needs a \
                 queue on every port): run `ethtool -L {name} combined {workers}` (or `ethtool -L {name} \
                 rx {workers} tx {workers}`), or use --workers {q}"
            ));
        }
        if q > MAX_QUEUES {
            return Err(format!(
                "port {name} has {q} rx queues, more than the {MAX_QUEUES} fastpathd can bind: run \
                 `ethtool -L {name} combined {MAX_QUEUES}` (or `ethtool -L {name} rx {MAX_QUEUES} tx {MAX_QUEUES}`)"
            ));
        }
        out.push(q);
    }
    Ok(out)
}

/// The queues worker `w` of `workers` polls on a port of `queues` rx
/// queues: `w`, `w + workers`, ... (2 queues and 1 worker: both).
pub(crate) fn worker_queues(w: usize, workers: usize, queues: u32) -> impl Iterator<Item = u32> {
    (w as u32..queues).step_by(workers.max(1))
}

/// The worker that polls (or, for a queue that grew after start, would
/// poll) rx queue `queue`: where its XDP drops are shown.
pub(crate) fn owner_of_queue(queue: u32, workers: usize) -> usize {
    queue as usize % workers.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, rx_queues: u32) -> PortQueues {
        PortQueues { name: name.into(), rx_queues }
    }

    #[test]
    fn every_queue_of_every_port_gets_a_worker() {
        let plan = plan(&[port("lan0", 2), port("wan0", 4)], 1, None).unwrap();
        assert_eq!(plan, vec![2, 4]);
        assert_eq!(worker_queues(0, 1, 2).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(worker_queues(0, 2, 4).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(worker_queues(1, 2, 4).collect::<Vec<_>>(), vec![1, 3]);
        let mut all: Vec<u32> = (0..3).flat_map(|w| worker_queues(w, 3, 8)).collect();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert_eq!(owner_of_queue(5, 2), 1);
    }

    #[test]
    fn a_port_with_fewer_queues_than_workers_is_refused_with_the_fix() {
        let e = plan(&[port("lan0", 2), port("wan0", 1)], 2, None).unwrap_err();
        assert_eq!(
            e,
            "port wan0 has 1 rx queue(s), fewer than --workers 2 (every worker needs a queue on every \
             port): run `ethtool -L wan0 combined 2` (or `ethtool -L wan0 rx 2 tx 2`), or use --workers 1"
        );
    }

    #[test]
    fn queues_left_without_a_socket_are_refused() {
        // --queues 1 on a 2-queue port used to bind queue 0 only.
        let e = plan(&[port("lan0", 2)], 1, Some(1)).unwrap_err();
        assert_eq!(
            e,
            "port lan0 has 2 rx queue(s) but --queues 1 was given: fastpathd binds every queue; run \
             `ethtool -L lan0 combined 1` (or `ethtool -L lan0 rx 1 tx 1`), or drop --queues"
        );
        assert_eq!(plan(&[port("lan0", 2)], 1, Some(2)).unwrap(), vec![2]);
        assert!(plan(&[port("lan0", 65)], 1, None).unwrap_err().contains("ethtool -L lan0 combined 64"));
    }
}
