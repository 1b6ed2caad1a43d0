mod cli;
mod differential;
mod harness;
mod operators;
mod reference;
