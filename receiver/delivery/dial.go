package delivery

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// newTransport is the one shared outbound transport. Unless allowLinkLocal, it refuses
// to connect to link-local addresses (cloud metadata services such as 169.254.169.254),
// checked on the resolved address at connect time so that DNS cannot get around it.
func newTransport(allowLinkLocal bool) *http.Transport {
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			if allowLinkLocal {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return nil
			}
			if ip := ap.Addr().Unmap(); ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
				return &permanentError{msg: "destination address " + ip.String() + " is link-local; refused (see --allow-link-local-destinations)"}
			}
			return nil
		},
	}
	return &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the per-attempt timeout bounds everything
		ExpectContinueTimeout: time.Second,
	}
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
