//! Why a command failed, and the exit code that says so: 2 for bad arguments, 1 for the rest.

/// A command's failure: a one-line message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: i32,
}

impl Failure {
    /// Bad arguments or local input (exit code 2, like a clap usage error).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// The command could not be done: an error answer, no connection, no key (exit code 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// Prints `error: <message>` on stderr and returns the exit code.
    pub fn report(self) -> i32 {
        eprintln!("error: {}", self.message);
        self.code
    }
}
