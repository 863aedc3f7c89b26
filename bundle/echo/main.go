// Command echo is kubeforge's test application: a static HTTP server that answers every
// request with a JSON description of it and of the pod that served it, so an end-to-end
// test can deploy an image from an offline bundle and see which replica answered.
// GET /lookup?host=NAME resolves NAME from inside the pod (the cluster DNS, through the
// pod's resolv.conf), so a test can see CoreDNS answer.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

// version is stamped at build time (-X main.version=...).
var version = "dev"

type reply struct {
	Hostname string              `json:"hostname"`
	Version  string              `json:"version"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Query    string              `json:"query,omitempty"`
	Remote   string              `json:"remote"`
	Headers  map[string][]string `json:"headers"`
}

type lookupReply struct {
	Host      string   `json:"host"`
	Addresses []string `json:"addresses"`
	Error     string   `json:"error,omitempty"`
}

// lookup answers {"host": NAME, "addresses": [...]} from net.LookupHost; a name that does
// not resolve is a 404 and a failing resolver a 502, each with the resolver's error.
func lookup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	host := r.URL.Query().Get("host")
	if host == "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(lookupReply{Addresses: []string{},
			Error: "missing query parameter host (GET /lookup?host=NAME)"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupHost(ctx, host)
	answer := lookupReply{Host: host, Addresses: addresses}
	if err != nil {
		var dnsErr *net.DNSError
		status := http.StatusBadGateway
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			status = http.StatusNotFound
		}
		answer.Addresses, answer.Error = []string{}, err.Error()
		w.WriteHeader(status)
	}
	_ = json.NewEncoder(w).Encode(answer)
}

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("echo %s\n", version)
		return
	}
	hostname, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/lookup", lookup)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply{
			Hostname: hostname, Version: version, Method: r.Method, Path: r.URL.Path,
			Query: r.URL.RawQuery, Remote: r.RemoteAddr, Headers: r.Header,
		})
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("echo %s listening on %s", version, *listen)
	log.Fatal(server.ListenAndServe())
}
