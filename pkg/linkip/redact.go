package linkip

import "strings"

// Redact hides the secret part of a link URL: every path segment after the first becomes
// "***" (collapsed to one), a query becomes "?***", a fragment is dropped, user info becomes
// "***@". The scheme, host and first segment (the NextDNS profile id) stay, so a log line still
// says which profile it is about: https://link-ip.nextdns.io/abc123/0123456789abcdef is shown as
// https://link-ip.nextdns.io/abc123/***.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		scheme, rest = "", url
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	hostPart, path, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hostPart, '@'); i >= 0 {
		hostPart = "***@" + hostPart[i+1:]
	}
	var b strings.Builder
	if ok {
		b.WriteString(scheme + "://")
	}
	b.WriteString(hostPart)
	if hasPath {
		first, more, hasMore := strings.Cut(path, "/")
		b.WriteString("/" + first)
		if hasMore && more != "" {
			b.WriteString("/***")
		} else if hasMore {
			b.WriteString("/")
		}
	}
	if hasQuery && query != "" {
		b.WriteString("?***")
	}
	return b.String()
}

// secrets are the parts of url that Redact hides, to scrub them from any other text (a
// program's error output may quote the URL or pieces of it).
func secrets(url string) []string {
	_, rest, ok := strings.Cut(url, "://")
	if !ok {
		rest = url
	}
	var out []string
	rest, frag, _ := strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	hostPart, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hostPart, '@'); i >= 0 {
		out = append(out, hostPart[:i])
	}
	if _, more, ok := strings.Cut(path, "/"); ok {
		for _, seg := range strings.Split(more, "/") {
			out = append(out, seg)
		}
	}
	out = append(out, query, frag)
	var keep []string
	for _, s := range out {
		if len(s) >= 3 { // shorter pieces are no secret, and would scrub ordinary words
			keep = append(keep, s)
		}
	}
	return keep
}

// scrub removes url and its secret parts from text.
func scrub(text, url string) string {
	if url == "" {
		return text
	}
	text = strings.ReplaceAll(text, url, Redact(url))
	for _, s := range secrets(url) {
		text = strings.ReplaceAll(text, s, "***")
	}
	return text
}
