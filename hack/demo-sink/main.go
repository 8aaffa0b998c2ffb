// Command demo-sink is the destination `make run` forwards events to: it answers 200 and
// prints one line per delivery (never the body).
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "address to listen on")
	flag.Parse()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 32<<20))
		fmt.Printf("%s delivered: event %s (%s) from %s, attempt %s, %d bytes, signature %t\n",
			time.Now().Format(time.TimeOnly), r.Header.Get("X-Hookgate-Event-Id"), r.Header.Get("X-Hookgate-Event-Type"),
			r.Header.Get("X-Hookgate-Partner"), r.Header.Get("X-Hookgate-Attempt"), n, r.Header.Get("Webhook-Signature") != "")
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-sink:", err)
		os.Exit(1)
	}
}
