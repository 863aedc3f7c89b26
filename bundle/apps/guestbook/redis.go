package main

// A minimal client for the Redis serialization protocol (RESP2): the frontend sends two
// commands, SET and GET, so a dependency would be more code than this file.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const redisTimeout = 10 * time.Second

// redisError is an error reply of the server ("-READONLY ...", "-LOADING ...").
type redisError string

func (e redisError) Error() string { return string(e) }

// reply is one RESP reply: a simple or bulk string, an integer (as text) or nil.
type reply struct {
	value string
	null  bool
}

// command opens a connection to addr, sends one command and reads its reply; each request
// has its own connection, as upstream's PHP frontend (Predis, one client per request) has.
func command(ctx context.Context, addr string, args ...string) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return reply{}, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, encode(args)); err != nil {
		return reply{}, fmt.Errorf("redis %s: %w", addr, err)
	}
	got, err := readReply(bufio.NewReader(conn))
	if err != nil {
		return reply{}, fmt.Errorf("redis %s: %w", addr, err)
	}
	return got, nil
}

// encode writes a command as an array of bulk strings, which carries any bytes.
func encode(args []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, arg := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(arg), arg)
	}
	return b.String()
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("malformed reply line %q", line)
	}
	return line[:len(line)-2], nil
}

func readReply(r *bufio.Reader) (reply, error) {
	line, err := readLine(r)
	if err != nil {
		return reply{}, err
	}
	if line == "" {
		return reply{}, errors.New("empty reply line")
	}
	switch kind, rest := line[0], line[1:]; kind {
	case '+', ':':
		return reply{value: rest}, nil
	case '-':
		return reply{}, redisError(rest)
	case '$':
		size, err := strconv.Atoi(rest)
		if err != nil || size < -1 {
			return reply{}, fmt.Errorf("malformed bulk length %q", rest)
		}
		if size == -1 {
			return reply{null: true}, nil
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(r, data); err != nil {
			return reply{}, err
		}
		if string(data[size:]) != "\r\n" {
			return reply{}, errors.New("bulk string not terminated by CRLF")
		}
		return reply{value: string(data[:size])}, nil
	default:
		return reply{}, fmt.Errorf("unexpected reply type %q", kind)
	}
}
