// Command guestbook-frontend is the frontend of the classic Kubernetes guestbook
// (kubernetes/examples, guestbook/php-redis, image gb-frontend:v4) as one static binary, so
// the example runs from an offline bundle: the same HTTP interface as upstream's PHP page.
//
//	GET /                                          the guestbook page
//	GET /guestbook.php?cmd=set&key=K&value=V       SET K V on the master: {"message": "Updated"}
//	GET /guestbook.php?cmd=get&key=K               GET K from a replica:  {"data": "V"}
//
// Like upstream, any cmd other than "set" reads, a missing key reads as "", and the hosts are
// the Services redis-master and redis-slave (port 6379) unless GET_HOSTS_FROM=env, which
// takes them from REDIS_MASTER_SERVICE_HOST and REDIS_SLAVE_SERVICE_HOST (and, unlike
// upstream's fixed 6379, the ports from the matching _SERVICE_PORT variables, which
// Kubernetes sets to the Service port).
//
// The bundle ships the program under two image tags (gb-frontend:v4 and :v5) that differ only
// in GUESTBOOK_RELEASE in the image's environment: a rolling update from one to the other is
// visible in every answer's X-Guestbook-Release header without a second program.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is stamped at build time (-X main.version=...).
var version = "dev"

//go:embed index.html
var indexPage []byte

type backends struct {
	master, replica string // host:port
}

func backendsFromEnv(getenv func(string) string) backends {
	if getenv("GET_HOSTS_FROM") == "env" {
		return backends{
			master:  service(getenv, "REDIS_MASTER"),
			replica: service(getenv, "REDIS_SLAVE"),
		}
	}
	return backends{master: "redis-master:6379", replica: "redis-slave:6379"}
}

func service(getenv func(string) string, prefix string) string {
	port := getenv(prefix + "_SERVICE_PORT")
	if port == "" {
		port = "6379"
	}
	return net.JoinHostPort(getenv(prefix+"_SERVICE_HOST"), port)
}

// jsonString quotes s as a JSON string without HTML escaping: plain values come out exactly
// as upstream's PHP prints them ({"data": "a,b"}), and any value is valid JSON (upstream
// pastes it in unquoted).
func jsonString(s string) string {
	var buf bytes.Buffer
	encoder := json.NewEncoder(&buf)
	encoder.SetEscapeHTML(false)
	_ = encoder.Encode(s)
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprint(w, body)
}

func (b backends) guestbook(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	if !query.Has("cmd") {
		// Upstream prints phpinfo() here; this says what the frontend is and talks to.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "guestbook-frontend %s\n", version)
		if rel := release(); rel != "" {
			fmt.Fprintf(w, "release: %s\n", rel)
		}
		fmt.Fprintf(w, "master: %s\nreplica: %s\n", b.master, b.replica)
		return
	}
	key := query.Get("key")
	if query.Get("cmd") == "set" {
		if _, err := command(r.Context(), b.master, "SET", key, query.Get("value")); err != nil {
			log.Printf("set %q: %v", key, err)
			writeJSON(w, http.StatusBadGateway, `{"error": `+jsonString(err.Error())+`}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"message": "Updated"}`)
		return
	}
	got, err := command(r.Context(), b.replica, "GET", key)
	if err != nil {
		log.Printf("get %q: %v", key, err)
		writeJSON(w, http.StatusBadGateway, `{"error": `+jsonString(err.Error())+`}`)
		return
	}
	writeJSON(w, http.StatusOK, `{"data": `+jsonString(got.value)+`}`) // nil reads as ""
}

func index(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/index.html" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(indexPage)
}

// logged writes one access-log line per request, as upstream's Apache does.
func logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(recorder, r)
		log.Printf("%s %s %s %d", r.RemoteAddr, r.Method, r.URL.RequestURI(), recorder.status)
	})
}

// release is the image's tag as its GUESTBOOK_RELEASE environment variable says ("" when run
// outside an image).
func release() string {
	return os.Getenv("GUESTBOOK_RELEASE")
}

// withRelease names the serving image in every answer, so a client sees a rollout happen.
func withRelease(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rel := release(); rel != "" {
			w.Header().Set("X-Guestbook-Release", rel)
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

func main() {
	listen := flag.String("listen", ":80", "address to listen on")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("guestbook-frontend %s\n", version)
		return
	}
	b := backendsFromEnv(os.Getenv)
	mux := http.NewServeMux()
	mux.HandleFunc("/guestbook.php", b.guestbook)
	mux.HandleFunc("/", index)
	server := &http.Server{Addr: *listen, Handler: logged(withRelease(mux)), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("guestbook-frontend %s listening on %s (master %s, replica %s)", version, *listen,
		b.master, b.replica)
	// On SIGTERM (a pod being replaced) finish the requests in flight instead of resetting
	// them; the example's preStop sleep has already let the Service stop sending new ones.
	stopped := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
		<-signals
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			log.Printf("shutdown: %v", err)
		}
		close(stopped)
	}()
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-stopped
}
