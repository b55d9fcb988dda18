//! Container logs: what the services logged, and whether any line speaks of an error.

/// The phrase fake-service logs for every request it handles.
pub const HANDLED_REQUEST: &str = "Handle inbound request";

/// Lines that record a handled request.
pub fn handled_requests(log: &str) -> usize {
    log.lines().filter(|l| l.contains(HANDLED_REQUEST)).count()
}

/// Lines that mention an error in any letter case (the workshop's claim C04 is that there are
/// none).
pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_errors_in_any_case() {
        let log = "2024-01-01T00:00:00Z [INFO]  Handle inbound request: request=\"GET / HTTP/1.1\"\n\
                   2024-01-01T00:00:01Z [ERROR] Error processing upstream request\n\
                   something ERROR-ish\n";
        assert_eq!(handled_requests(log), 1);
        assert_eq!(error_lines(log).len(), 2);
        assert!(error_lines("[INFO]  Handle inbound request\n").is_empty());
    }
}
