//! Packet captures as `tcpdump -A` prints them: was there traffic, and was any of it plaintext
//! HTTP?

/// Packets that carried a payload: tcpdump's header lines end in `length N` with N > 0.
pub fn packets_with_payload(capture: &str) -> usize {
    capture
        .lines()
        .filter_map(|l| l.rsplit_once("length ").map(|(_, n)| n))
        .filter_map(|n| {
            n.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse::<u64>().ok())
        })
        .filter(|&n| n > 0)
        .count()
}

/// Plaintext HTTP/1.x on the wire: a request line or a status line.
pub fn plaintext_http(capture: &str) -> Option<&str> {
    const METHODS: [&str; 7] = [
        "GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "PATCH ", "OPTIONS ",
    ];
    capture.lines().find(|line| {
        line.contains("HTTP/1.1 ")
            || line.contains("HTTP/1.0 ")
            || METHODS.iter().any(|m| {
                line.contains(m) && (line.contains(" HTTP/1.1") || line.contains(" HTTP/1.0"))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &str = "12:00:00.000000 IP 10.244.0.7.43210 > 10.244.0.9.8080: Flags [P.], seq 1:518, ack 1, win 502, length 517\n\
E..9..@.@...\n....\n..........0...x....\n\
12:00:00.000100 IP 10.244.0.9.8080 > 10.244.0.7.43210: Flags [.], ack 518, win 501, length 0\n";

    #[test]
    fn tls_is_traffic_without_plaintext() {
        assert_eq!(packets_with_payload(TLS), 1);
        assert_eq!(plaintext_http(TLS), None);
    }

    #[test]
    fn plaintext_requests_and_responses_are_found() {
        let plain = "12:00:00.000000 IP 10.244.0.7.43210 > 10.244.0.9.8080: Flags [P.], length 78\n\
GET / HTTP/1.1\nHost: service-c\n";
        assert!(plaintext_http(plain).is_some());
        let response = "12:00 IP a.8080 > b.1: Flags [P.], length 300\nHTTP/1.1 200 OK\n";
        assert!(plaintext_http(response).is_some());
        assert_eq!(packets_with_payload(""), 0);
    }
}
