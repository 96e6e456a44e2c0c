//! The request heads the HTTP parse benches measure, shared by `http_parse` (criterion, time)
//! and `callgrind` (instructions), so that both count the same bytes.

/// A TechEmpower-plaintext-style request: 147 bytes, 3 headers.
pub const PLAINTEXT: &[u8] = b"\
GET /plaintext HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
Connection: keep-alive\r\n\r\n";

/// A browser navigation: 694 bytes, 14 headers.
pub const BROWSER: &[u8] = b"\
GET /articles/2024/sans-io-http-servers?ref=home&page=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: session_id=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1; _ga=GA1.2.1234567890.1700000000; lang=en-US; tz=Europe%2FBerlin\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-User: ?1\r\n\
Priority: u=0, i\r\n\r\n";

/// The inputs by the names the bench groups carry (the sizes in the names are checked).
pub const INPUTS: [(&str, &[u8]); 2] = [("plaintext_147b", PLAINTEXT), ("browser_694b", BROWSER)];
