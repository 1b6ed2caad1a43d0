mod cli;
mod differential;
mod harness;
mod operators;
mod reference;
mod serve;
mod snapshots;
mod storage;
