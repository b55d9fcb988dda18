//! Packet captures as `tcpdump -A` prints them: was there traffic, and was any of it plaintext
//! HTTP?

/// Packets that carried a payload: tcpdump's TCP lines (`… Flags [P.], …`) end in `length N`
/// with N > 0 (followed by `: HTTP…` when tcpdump's HTTP printer took the payload, print-tcp.c).
/// With `-v` each packet also has an IP line, `IP (tos …, length N)`, which is not counted.
pub fn packets_with_payload(capture: &str) -> usize {
    capture
        .lines()
        .filter(|l| l.contains("Flags ["))
        .filter_map(|l| l.rsplit_once("length ").map(|(_, n)| n))
        .filter_map(|n| {
            n.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse::<u64>().ok())
        })
        .filter(|&n| n > 0)
        .count()
}

/// Packets to or from `port` (tcpdump -n's `A.B.C.D.PORT` in the TCP line) with a payload.
pub fn packets_on_port(capture: &str, port: u16) -> usize {
    let to = format!(".{port}: Flags [");
    let from = format!(".{port} > ");
    packets_with_payload(
        &capture
            .lines()
            .filter(|l| l.contains(&to) || l.contains(&from))
            .collect::<Vec<_>>()
            .join("\n"),
    )
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

    /// What Debian's tcpdump 4.99 prints for the workshop's `-vv` capture on port 8080 (taken
    /// from the sandbox's tcpdump, which is the real one): TLS shows as `: HTTP` only, a
    /// plaintext response as tcpdump's HTTP printer's text lines (util-print.c
    /// txtproto_print).
    const VV: &str = "12:19:37.512380 IP (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto TCP (6), length 1647)\n\
    127.1.0.8.8080 > 127.1.0.13.38161: Flags [P.], cksum 0x7f51 (correct), seq 1:1596, ack 1, win 502, options [nop,nop,TS val 1 ecr 1], length 1595: HTTP, length: 1595\n\
\tHTTP/1.1 200 OK\n\
\tcontent-type: text/plain; charset=utf-8\n\
\t\n\
\t{\n\
\t  \"name\": \"service-a\",\n";
    const VV_TLS: &str = "12:19:38.000001 IP (tos 0x0, ttl 64, id 7, offset 0, flags [DF], proto TCP (6), length 569)\n\
    127.1.0.5.51234 > 127.1.0.8.8080: Flags [P.], cksum 0x1b87 (correct), seq 1:518, ack 1, win 502, options [nop,nop,TS val 1 ecr 1], length 517: HTTP\n";

    #[test]
    fn the_workshops_verbose_capture_is_read() {
        assert_eq!(packets_with_payload(VV), 1, "the IP line is not a packet");
        assert_eq!(packets_on_port(VV, 8080), 1);
        assert_eq!(packets_on_port(VV, 9080), 0);
        assert!(plaintext_http(VV).is_some_and(|l| l.contains("HTTP/1.1 200 OK")));
        assert_eq!(packets_on_port(VV_TLS, 8080), 1);
        assert_eq!(plaintext_http(VV_TLS), None);
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
