//! Packets passed between workers. An SA has one owner (one writer of its
//! sequence number and replay window, DESIGN.md §3); a packet for it that
//! arrives on another worker is copied into a buffer from a shared pool and
//! queued to the owner. Lock-free queues, buffers allocated once.
//!
//! Two kinds of frame travel: frames as received (ESP for an SA the
//! receiver owns, clear packets for its outbound SA, IP fragments for the
//! worker that reassembles their datagram), which the receiver takes
//! through the whole pipeline, and inner packets decrypted by the sender
//! (hub and spoke), which it takes through the decrypted path.

use crossbeam::queue::ArrayQueue;

/// Largest frame handed off.
pub(crate) const HANDOFF_FRAME: usize = 2048;

/// A handed-off frame.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) buf: Box<[u8; HANDOFF_FRAME]>,
    pub(crate) len: u16,
    pub(crate) rx_port: u8,
    /// An inner packet decrypted by the sender
    /// (`Action::HandOffDecrypted`), not a frame as received.
    pub(crate) decrypted: bool,
}

/// The pool of buffers and one inbox per worker.
#[derive(Debug)]
pub(crate) struct Handoffs {
    free: ArrayQueue<Box<[u8; HANDOFF_FRAME]>>,
    inboxes: Vec<ArrayQueue<Handoff>>,
}

impl Handoffs {
    pub(crate) fn new(workers: usize, buffers: usize) -> Handoffs {
        let free = ArrayQueue::new(buffers.max(1));
        for _ in 0..buffers {
            let _ = free.push(Box::new([0u8; HANDOFF_FRAME]));
        }
        Handoffs { free, inboxes: (0..workers).map(|_| ArrayQueue::new(buffers.max(1))).collect() }
    }

    /// Copies `frame` to worker `to`; false when no buffer or the inbox is
    /// full (the caller counts the drop).
    pub(crate) fn send(&self, to: usize, frame: &[u8], rx_port: u8, decrypted: bool) -> bool {
        let Some(inbox) = self.inboxes.get(to) else { return false };
        if frame.len() > HANDOFF_FRAME {
            return false;
        }
        let Some(mut buf) = self.free.pop() else { return false };
        buf[..frame.len()].copy_from_slice(frame);
        match inbox.push(Handoff { buf, len: frame.len() as u16, rx_port, decrypted }) {
            Ok(()) => true,
            Err(h) => {
                let _ = self.free.push(h.buf);
                false
            }
        }
    }

    /// The next frame for worker `me`.
    pub(crate) fn recv(&self, me: usize) -> Option<Handoff> {
        self.inboxes.get(me)?.pop()
    }

    /// Gives a buffer back to the pool.
    pub(crate) fn release(&self, h: Handoff) {
        let _ = self.free.push(h.buf);
    }
}
