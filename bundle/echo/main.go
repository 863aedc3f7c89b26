// Command echo is kubeforge's test application: a static HTTP server that answers every
// request with a JSON description of it and of the pod that served it, so an end-to-end
// test can deploy an image from an offline bundle and see which replica answered.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
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
