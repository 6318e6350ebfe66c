//! Engines that run a bisection's build and test steps on machines other
//! than the driver's (issue 31).
pub mod kubernetes;
