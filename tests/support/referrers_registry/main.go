// A loopback OCI registry with the referrers API, for the attestation tests: go-containerregistry's
// pkg/registry (in memory) with its referrers support on. That registry lists referrers but never answers a
// manifest PUT with the OCI-Subject header the distribution spec asks of a registry that supports them; this
// program adds it, so the client's "the registry took the referrer" path runs against a real implementation.
//
// Usage: referrers_registry -addr 127.0.0.1:PORT  (prints "listening on ADDR" once it accepts connections)
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

const maxManifestBytes = 4 << 20

type subjectHeader struct {
	http.ResponseWriter
	subject string
}

func (w *subjectHeader) WriteHeader(status int) {
	if status == http.StatusCreated && w.subject != "" {
		w.Header().Set("OCI-Subject", w.subject)
	}
	w.ResponseWriter.WriteHeader(status)
}

func withSubjectHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
		if err != nil || len(body) > maxManifestBytes {
			http.Error(w, "manifest too large or unreadable", http.StatusBadRequest)
			return
		}
		var manifest struct {
			Subject *struct {
				Digest string `json:"digest"`
			} `json:"subject"`
		}
		subject := ""
		if json.Unmarshal(body, &manifest) == nil && manifest.Subject != nil {
			subject = manifest.Subject.Digest
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(&subjectHeader{ResponseWriter: w, subject: subject}, r)
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	handler := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(os.Stderr, "", log.LstdFlags)))
	fmt.Printf("listening on %s\n", listener.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(listener, withSubjectHeader(handler)))
}
