//! Fuzz entry points for the pipeline (see `fastpath/fuzz`).

use std::time::Instant;

use crate::lab::{self, LabOptions, Side};
use crate::update::VecOutput;
use crate::{Action, Update, VecFrame, Worker};

/// A gateway of the lab with SAs installed, built once per fuzz process;
/// it takes VPN monitor replies (identifier 0x6573, controld's) too.
pub fn lab_gateway() -> Worker {
    let mut w = lab::gateway(Side::B, &LabOptions::default());
    w.apply(Update::ProbeIdent(0x6573), &mut VecOutput::default());
    w
}

/// Feeds `data` as one Ethernet frame to `w`, first as if received on
/// the WAN port, then on the LAN port. Must never panic; every frame gets
/// an action.
pub fn worker_burst(w: &mut Worker, data: &[u8]) {
    let now = Instant::now();
    let mut out = VecOutput::default();
    for port in [lab::WAN, lab::LAN] {
        let mut frames = [VecFrame::new(2048, 256, data)];
        let mut actions = [Action::Held];
        w.process_burst(now, port, &mut frames, &mut actions, &mut out);
        if let Action::Tx(_) = actions[0] {
            let f = &frames[0];
            assert!(f.head + f.len <= f.buf.len());
        }
    }
}
