//! NS16550A UART, laid out as on QEMU's `virt` board: eight 8-bit registers
//! at consecutive byte offsets (`reg-shift` 0, `reg-io-width` 1) at
//! 0x1000_0000.
//!
//! Register behaviour follows the National Semiconductor / TI "PC16550D
//! Universal Asynchronous Receiver/Transmitter with FIFOs" datasheet
//! (SNLS378): §8.1 register summary (Table 2), §8.4 LSR, §8.5 FCR,
//! §8.6 IIR (Table 4: interrupt priorities), §8.7 IER, §8.8 MCR, §8.9 MSR,
//! §8.10 SCR.
//!
//! Transmission is instantaneous: a byte written to THR goes straight to the
//! output sink, so THR and the transmitter shift register are always empty
//! again by the time the guest looks (LSR.THRE = LSR.TEMT = 1). That is
//! observably the same as a very fast line. Reception is fed by the platform
//! through [`Uart::push_input`]; [`Uart::rx_space`] tells it how many bytes
//! fit before an overrun, so a console thread can apply back-pressure.
//!
//! Access sizes: like QEMU's MMIO 16550, an access of any size at offset
//! 0..=7 acts on that one 8-bit register (reads return the byte
//! zero-extended, writes use the low byte). Offsets 8 and above read 0 and
//! ignore writes.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::{IrqLine, MmioDevice};

/// Size of the MMIO window QEMU's `virt` gives the UART.
pub const UART_MMIO_SIZE: u64 = 0x100;

/// Receive FIFO depth (§8.5: 16 bytes).
pub const RX_FIFO_SIZE: usize = 16;

// Register offsets (§8.1, Table 2).
const RBR_THR_DLL: u64 = 0;
const IER_DLM: u64 = 1;
const IIR_FCR: u64 = 2;
const LCR: u64 = 3;
const MCR: u64 = 4;
const LSR: u64 = 5;
const MSR: u64 = 6;
const SCR: u64 = 7;

// IER bits (§8.7).
const IER_ERBFI: u8 = 1 << 0; // received data available
const IER_ETBEI: u8 = 1 << 1; // THR empty
const IER_ELSI: u8 = 1 << 2; // receiver line status
const IER_EDSSI: u8 = 1 << 3; // modem status
const IER_MASK: u8 = 0x0f;

// IIR values (§8.6, Table 4). Bit 0 = 1 means "no interrupt pending".
const IIR_NONE: u8 = 0x01;
const IIR_RLS: u8 = 0x06; // priority 1: overrun/parity/framing/break
const IIR_RDA: u8 = 0x04; // priority 2: received data available
const IIR_CTI: u8 = 0x0c; // priority 2: character timeout (FIFO mode)
const IIR_THRE: u8 = 0x02; // priority 3: THR empty
const IIR_MSI: u8 = 0x00; // priority 4: modem status
const IIR_FIFO_ENABLED: u8 = 0xc0; // bits 7:6 = 11 when FCR0 = 1

// FCR bits (§8.5).
const FCR_ENABLE: u8 = 1 << 0;
const FCR_RX_RESET: u8 = 1 << 1;
const FCR_TRIGGER: u8 = 0xc0;

// LCR (§8.3).
const LCR_DLAB: u8 = 1 << 7;

// MCR bits (§8.8).
const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOP: u8 = 1 << 4;
const MCR_MASK: u8 = 0x1f;

// LSR bits (§8.4).
const LSR_DR: u8 = 1 << 0;
const LSR_OE: u8 = 1 << 1;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;

// MSR bits (§8.9).
const MSR_DCTS: u8 = 1 << 0;
const MSR_DDSR: u8 = 1 << 1;
const MSR_TERI: u8 = 1 << 2;
const MSR_DDCD: u8 = 1 << 3;
const MSR_CTS: u8 = 1 << 4;
const MSR_DSR: u8 = 1 << 5;
const MSR_RI: u8 = 1 << 6;
const MSR_DCD: u8 = 1 << 7;
const MSR_DELTAS: u8 = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;

/// Where transmitted bytes go.
pub type UartSink = Box<dyn FnMut(u8) + Send>;

pub struct Uart {
    out: UartSink,
    irq: Arc<dyn IrqLine>,
    irq_level: bool,

    rx: VecDeque<u8>,
    ier: u8,
    lcr: u8,
    mcr: u8,
    /// FCR bits that are remembered: enable (bit 0) and the trigger level
    /// (bits 7:6). The reset bits are self-clearing.
    fcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// LSR.OE: set when a byte arrives into a full receiver, cleared by
    /// reading LSR (§8.4).
    overrun: bool,
    /// The THRE interrupt condition (§8.6 Table 4, priority 3): set when THR
    /// becomes empty, or when ETBEI is enabled while THR is empty; cleared by
    /// reading IIR while THRE is the reported source, or by writing THR.
    thre_pending: bool,
    /// MSR bits 3:0 (delta bits), cleared by reading MSR.
    msr_deltas: u8,
}

impl Uart {
    /// A UART in its reset state (§8.1, "Reset" column of Table 12 in the
    /// datasheet: IER = 0, IIR = 1, FCR = 0, LCR = 0, MCR = 0,
    /// LSR = 0x60, MSR bits 3:0 = 0).
    pub fn new(out: UartSink, irq: Arc<dyn IrqLine>) -> Self {
        irq.set_level(false);
        Uart {
            out,
            irq,
            irq_level: false,
            rx: VecDeque::with_capacity(RX_FIFO_SIZE),
            ier: 0,
            lcr: 0,
            mcr: 0,
            fcr: 0,
            scr: 0,
            dll: 0,
            dlm: 0,
            overrun: false,
            thre_pending: false,
            msr_deltas: 0,
        }
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    /// Receiver capacity: 16 bytes in FIFO mode, one holding register in
    /// 16450 (non-FIFO) mode (§8.5).
    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            RX_FIFO_SIZE
        } else {
            1
        }
    }

    /// Receiver FIFO trigger level from FCR bits 7:6 (§8.5, Table 5).
    fn rx_trigger(&self) -> usize {
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    /// How many bytes [`push_input`](Self::push_input) can take now without
    /// an overrun. Zero while the UART is in loopback mode (the receiver is
    /// then disconnected from the line, §8.8).
    pub fn rx_space(&self) -> usize {
        if self.mcr & MCR_LOOP != 0 {
            return 0;
        }
        self.rx_capacity().saturating_sub(self.rx.len())
    }

    /// A byte arriving from the line (the host console). A byte that does not
    /// fit is lost and sets LSR.OE, as a real receiver overrun does (§8.4);
    /// bytes pushed in loopback mode are dropped (the serial input is
    /// disconnected then, §8.8).
    pub fn push_input(&mut self, b: u8) {
        if self.mcr & MCR_LOOP != 0 {
            return;
        }
        self.receive(b);
        self.update_irq();
    }

    fn receive(&mut self, b: u8) {
        if self.rx.len() >= self.rx_capacity() {
            // FIFO mode: the FIFO keeps its contents, the new character is
            // lost. Non-FIFO mode: the holding register is overwritten
            // (§8.4, LSR bit 1). Either way the guest sees OE.
            if !self.fifo_enabled() {
                self.rx.clear();
                self.rx.push_back(b);
            }
            self.overrun = true;
        } else {
            self.rx.push_back(b);
        }
    }

    fn transmit(&mut self, b: u8) {
        if self.mcr & MCR_LOOP != 0 {
            // Loopback: the transmitter output is wired to the receiver
            // input (§8.8, MCR bit 4).
            self.receive(b);
        } else {
            (self.out)(b);
        }
        // The byte has left THR at once: THR is empty again, which is a new
        // THRE interrupt condition (§8.6).
        self.thre_pending = true;
    }

    fn lsr(&self) -> u8 {
        let mut v = LSR_THRE | LSR_TEMT;
        if !self.rx.is_empty() {
            v |= LSR_DR;
        }
        if self.overrun {
            v |= LSR_OE;
        }
        v
    }

    fn msr(&self) -> u8 {
        let status = if self.mcr & MCR_LOOP != 0 {
            // Loopback (§8.8): CTS = RTS, DSR = DTR, RI = OUT1, DCD = OUT2.
            let mut s = 0;
            if self.mcr & MCR_RTS != 0 {
                s |= MSR_CTS;
            }
            if self.mcr & MCR_DTR != 0 {
                s |= MSR_DSR;
            }
            if self.mcr & MCR_OUT1 != 0 {
                s |= MSR_RI;
            }
            if self.mcr & MCR_OUT2 != 0 {
                s |= MSR_DCD;
            }
            s
        } else {
            // A permanently connected line: carrier, data set ready and
            // clear to send all asserted.
            MSR_DCD | MSR_DSR | MSR_CTS
        };
        status | self.msr_deltas
    }

    /// The highest-priority pending interrupt's IIR identification bits
    /// (§8.6, Table 4), without the FIFO bits.
    fn iir_id(&self) -> u8 {
        if self.ier & IER_ELSI != 0 && self.overrun {
            return IIR_RLS;
        }
        if self.ier & IER_ERBFI != 0 && !self.rx.is_empty() {
            // In FIFO mode, data below the trigger level is reported through
            // the character-timeout interrupt; the timeout (four character
            // times without activity) is taken as already elapsed, since the
            // emulated line delivers bytes in bursts.
            if self.fifo_enabled() && self.rx.len() < self.rx_trigger() {
                return IIR_CTI;
            }
            return IIR_RDA;
        }
        if self.ier & IER_ETBEI != 0 && self.thre_pending {
            return IIR_THRE;
        }
        if self.ier & IER_EDSSI != 0 && self.msr_deltas != 0 {
            return IIR_MSI;
        }
        IIR_NONE
    }

    fn update_irq(&mut self) {
        let level = self.iir_id() & 1 == 0;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }

    fn set_mcr(&mut self, v: u8) {
        let old_status = self.msr() & !MSR_DELTAS;
        self.mcr = v & MCR_MASK;
        let new_status = self.msr() & !MSR_DELTAS;
        // In loopback the modem inputs follow MCR, so changing MCR can set
        // the MSR delta bits (§8.9): DCTS/DDSR/DDCD on any change, TERI when
        // RI goes from 1 to 0.
        let changed = old_status ^ new_status;
        if changed & MSR_CTS != 0 {
            self.msr_deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.msr_deltas |= MSR_DDSR;
        }
        if changed & MSR_DCD != 0 {
            self.msr_deltas |= MSR_DDCD;
        }
        if old_status & MSR_RI != 0 && new_status & MSR_RI == 0 {
            self.msr_deltas |= MSR_TERI;
        }
    }

    fn write_fcr(&mut self, v: u8) {
        // Changing FCR0 clears both FIFOs (§8.5, FCR bit 0).
        if (v ^ self.fcr) & FCR_ENABLE != 0 {
            self.rx.clear();
        }
        if v & FCR_RX_RESET != 0 {
            self.rx.clear();
        }
        // Bit 2 (transmit FIFO reset) has nothing to do: the transmit FIFO
        // is always empty here. Bit 3 (DMA mode) only changes the RXRDY and
        // TXRDY pins, which this UART does not have.
        self.fcr = v & (FCR_ENABLE | FCR_TRIGGER);
    }

    fn read_reg(&mut self, reg: u64) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match reg {
            RBR_THR_DLL if dlab => self.dll,
            RBR_THR_DLL => self.rx.pop_front().unwrap_or(0),
            IER_DLM if dlab => self.dlm,
            IER_DLM => self.ier,
            IIR_FCR => {
                let id = self.iir_id();
                // Reading IIR while THRE is the reported source clears it
                // (§8.6, Table 4, "Interrupt Reset Control").
                if id == IIR_THRE {
                    self.thre_pending = false;
                }
                let fifo = if self.fifo_enabled() { IIR_FIFO_ENABLED } else { 0 };
                id | fifo
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let v = self.lsr();
                // Reading LSR clears the error bits (§8.4).
                self.overrun = false;
                v
            }
            MSR => {
                let v = self.msr();
                self.msr_deltas = 0;
                v
            }
            SCR => self.scr,
            _ => 0,
        }
    }

    fn write_reg(&mut self, reg: u64, v: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match reg {
            RBR_THR_DLL if dlab => self.dll = v,
            RBR_THR_DLL => self.transmit(v),
            IER_DLM if dlab => self.dlm = v,
            IER_DLM => {
                let old = self.ier;
                self.ier = v & IER_MASK;
                // Enabling ETBEI with THR empty raises THRE at once (§8.7;
                // this is what drivers' "THRE test" relies on).
                if old & IER_ETBEI == 0 && self.ier & IER_ETBEI != 0 {
                    self.thre_pending = true;
                }
            }
            IIR_FCR => self.write_fcr(v),
            LCR => self.lcr = v,
            MCR => self.set_mcr(v),
            // LSR and MSR are read-only here (the datasheet calls writing
            // them a factory-test feature).
            LSR | MSR => {}
            SCR => self.scr = v,
            _ => {}
        }
    }
}

impl MmioDevice for Uart {
    fn read(&mut self, offset: u64, _size: u8) -> u64 {
        if offset > SCR {
            return 0;
        }
        let v = self.read_reg(offset);
        self.update_irq();
        v as u64
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64) {
        if offset > SCR {
            return;
        }
        self.write_reg(offset, value as u8);
        self.update_irq();
    }
}

/// The UART's state in a snapshot (docs/snapshot.md): every register and
/// the receive FIFO. The transmitter has no FIFO here: each byte goes to the
/// host as it is written, so nothing waits to be sent at a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UartState {
    pub rx: Vec<u8>,
    pub ier: u8,
    pub lcr: u8,
    pub mcr: u8,
    pub fcr: u8,
    pub scr: u8,
    pub dll: u8,
    pub dlm: u8,
    pub overrun: bool,
    pub thre_pending: bool,
    pub msr_deltas: u8,
}

impl Uart {
    pub fn save(&self) -> UartState {
        UartState {
            rx: self.rx.iter().copied().collect(),
            ier: self.ier,
            lcr: self.lcr,
            mcr: self.mcr,
            fcr: self.fcr,
            scr: self.scr,
            dll: self.dll,
            dlm: self.dlm,
            overrun: self.overrun,
            thre_pending: self.thre_pending,
            msr_deltas: self.msr_deltas,
        }
    }

    /// Restores `s` and drives the interrupt line to match.
    pub fn restore(&mut self, s: &UartState) -> Result<(), String> {
        if s.rx.len() > RX_FIFO_SIZE {
            return Err(format!("UART state: {} bytes in a {RX_FIFO_SIZE}-byte FIFO", s.rx.len()));
        }
        self.rx = s.rx.iter().copied().collect();
        self.ier = s.ier;
        self.lcr = s.lcr;
        self.mcr = s.mcr & MCR_MASK;
        self.fcr = s.fcr;
        self.scr = s.scr;
        self.dll = s.dll;
        self.dlm = s.dlm;
        self.overrun = s.overrun;
        self.thre_pending = s.thre_pending;
        self.msr_deltas = s.msr_deltas & MSR_DELTAS;
        self.irq_level = !self.irq_level;
        self.update_irq();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Line(AtomicBool);
    impl IrqLine for Line {
        fn set_level(&self, level: bool) {
            self.0.store(level, Ordering::SeqCst);
        }
    }
    impl Line {
        fn get(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn uart() -> (Uart, Arc<Mutex<Vec<u8>>>, Arc<Line>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let line = Arc::new(Line::default());
        let u = Uart::new(Box::new(move |b| o.lock().unwrap().push(b)), line.clone());
        (u, out, line)
    }

    #[test]
    fn transmits_and_reports_empty_transmitter() {
        let (mut u, out, line) = uart();
        for &b in b"hi" {
            u.write(0, 1, b as u64);
        }
        // A wider access acts on the byte register, as QEMU's does.
        u.write(0, 4, 0x1234_5621);
        assert_eq!(&*out.lock().unwrap(), b"hi!");
        assert_eq!(u.read(5, 1) as u8 & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        assert_eq!(u.read(2, 1), 0x01, "no interrupt, FIFOs off");
        assert!(!line.get());
    }

    #[test]
    fn scratch_dlab_and_divisor() {
        let (mut u, out, _) = uart();
        u.write(7, 1, 0xa5);
        assert_eq!(u.read(7, 1), 0xa5);
        u.write(3, 1, 0x83); // DLAB | 8N1
        u.write(0, 1, 0x01);
        u.write(1, 1, 0x02);
        assert_eq!(u.read(0, 1), 0x01);
        assert_eq!(u.read(1, 1), 0x02);
        u.write(3, 1, 0x03);
        assert_eq!(u.read(3, 1), 0x03);
        assert_eq!(u.read(1, 1), 0x00, "IER untouched by the DLM write");
        assert!(out.lock().unwrap().is_empty(), "DLL write is not a THR write");
    }

    #[test]
    fn fifo_bits_in_iir_and_reset() {
        let (mut u, _, _) = uart();
        u.write(2, 1, 0x07); // enable + reset both FIFOs
        assert_eq!(u.read(2, 1) & 0xc0, 0xc0);
        for b in 0..20u8 {
            u.push_input(b);
        }
        assert_eq!(u.rx_space(), 0);
        let lsr = u.read(5, 1) as u8;
        assert!(lsr & LSR_DR != 0 && lsr & LSR_OE != 0);
        assert_eq!(u.read(5, 1) as u8 & LSR_OE, 0, "OE clears on LSR read");
        // The FIFO kept the first 16 bytes.
        let got: Vec<u8> = (0..16).map(|_| u.read(0, 1) as u8).collect();
        assert_eq!(got, (0..16).collect::<Vec<u8>>());
        assert_eq!(u.read(5, 1) as u8 & LSR_DR, 0);
        u.push_input(1);
        u.write(2, 1, 0x03); // RX reset
        assert_eq!(u.read(5, 1) as u8 & LSR_DR, 0);
        u.write(2, 1, 0x00);
        assert_eq!(u.read(2, 1) & 0xc0, 0);
        assert_eq!(u.rx_space(), 1, "16450 mode has one holding register");
    }

    #[test]
    fn receive_interrupt_priority_over_thre() {
        let (mut u, _, line) = uart();
        u.write(2, 1, 0x01 | 0x80); // FIFO on, trigger 8
        u.write(1, 1, (IER_ERBFI | IER_ETBEI) as u64);
        assert!(line.get());
        u.push_input(b'a');
        assert_eq!(u.read(2, 1) as u8, 0xc0 | IIR_CTI, "below trigger: timeout");
        for _ in 0..8 {
            u.push_input(b'b');
        }
        assert_eq!(u.read(2, 1) as u8, 0xc0 | IIR_RDA);
        for _ in 0..9 {
            u.read(0, 1);
        }
        assert!(line.get(), "THRE still pending");
        assert_eq!(u.read(2, 1) as u8, 0xc0 | IIR_THRE);
        assert!(!line.get(), "reading IIR cleared THRE");
        assert_eq!(u.read(2, 1) as u8, 0xc0 | IIR_NONE);
    }

    #[test]
    fn thre_interrupt_semantics() {
        let (mut u, _, line) = uart();
        u.write(1, 1, IER_ETBEI as u64);
        assert!(line.get(), "enabling ETBEI with THR empty raises THRE");
        assert_eq!(u.read(2, 1) as u8, IIR_THRE);
        assert!(!line.get());
        // Writing THR: the byte leaves at once and THR is empty again.
        u.write(0, 1, b'x' as u64);
        assert!(line.get());
        // Disabling ETBEI drops the line; re-enabling raises it again.
        u.write(1, 1, 0);
        assert!(!line.get());
        u.write(1, 1, IER_ETBEI as u64);
        assert!(line.get());
    }

    #[test]
    fn line_status_interrupt_on_overrun() {
        let (mut u, _, line) = uart();
        u.write(1, 1, (IER_ELSI | IER_ERBFI) as u64);
        u.push_input(1);
        assert_eq!(u.read(2, 1) as u8, IIR_RDA);
        u.push_input(2); // non-FIFO mode: overrun
        assert_eq!(u.read(2, 1) as u8, IIR_RLS);
        u.read(5, 1);
        assert_eq!(u.read(2, 1) as u8, IIR_RDA);
        assert_eq!(u.read(0, 1), 2, "holding register overwritten");
        assert!(!line.get());
    }

    #[test]
    fn loopback_and_modem_status() {
        let (mut u, out, _) = uart();
        assert_eq!(u.read(6, 1) as u8 & 0xf0, MSR_DCD | MSR_DSR | MSR_CTS);
        u.write(4, 1, (MCR_LOOP | MCR_OUT2 | MCR_RTS) as u64);
        assert_eq!(u.read(6, 1) as u8 & 0xf0, MSR_CTS | MSR_DCD);
        u.write(4, 1, (MCR_LOOP | MCR_OUT1 | MCR_DTR) as u64);
        let msr = u.read(6, 1) as u8;
        assert_eq!(msr & 0xf0, MSR_RI | MSR_DSR);
        assert!(msr & (MSR_DCTS | MSR_DDCD) != 0);
        assert_eq!(u.read(6, 1) as u8 & 0x0f, 0, "deltas clear on read");
        u.write(0, 1, 0x55);
        assert_eq!(u.read(5, 1) as u8 & LSR_DR, LSR_DR);
        assert_eq!(u.read(0, 1), 0x55);
        assert!(out.lock().unwrap().is_empty());
        assert_eq!(u.rx_space(), 0);
        u.push_input(9);
        assert_eq!(u.read(5, 1) as u8 & LSR_DR, 0);
        u.write(4, 1, 0);
        assert_eq!(u.rx_space(), 1);
    }

    #[test]
    fn modem_status_interrupt_lowest_priority() {
        let (mut u, _, line) = uart();
        u.write(1, 1, IER_EDSSI as u64);
        u.write(4, 1, (MCR_LOOP | MCR_RTS) as u64);
        assert!(line.get());
        assert_eq!(u.read(2, 1) as u8, IIR_MSI);
        u.read(6, 1);
        assert!(!line.get());
    }

    #[test]
    fn bad_offsets_are_harmless() {
        let (mut u, out, line) = uart();
        for off in [8u64, 0x10, 0xff, u64::MAX] {
            assert_eq!(u.read(off, 1), 0);
            u.write(off, 8, u64::MAX);
        }
        assert!(out.lock().unwrap().is_empty());
        assert!(!line.get());
        assert_eq!(u.read(1, 1), 0);
    }
}
