//! RISC-V F and D arithmetic (to be written).
