// Command rootfs writes the image's root filesystem, less the binary, as a tar whose entries
// carry their owners and modes (the Containerfile ADDs it; ADD keeps them, COPY would not, and a
// builder that is not root could not chown them): /etc/passwd and /etc/group (root, nonroot
// 65532), the CA bundle, /tmp (1777) and the working directory /var/lib/platform, owned by
// nonroot. Entries are in a fixed order with a fixed time (SOURCE_DATE_EPOCH, else 0), so the
// same inputs give the same bytes. It is Go rather than GNU tar so that `azd up` can build the
// image's context on macOS and Windows too.
//
//	go run ./deploy/image/rootfs -o bin/image/rootfs.tar [-ca FILE]
//
// Without -ca (or CA_BUNDLE), the first CA bundle found where Debian, Ubuntu, Alpine, Fedora,
// RHEL or macOS keep theirs is used.
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// bundles are where systems keep their CA bundle (as Go's crypto/x509 looks for one).
var bundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine, Gentoo
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // macOS, Alpine
}

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/platform:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

func main() {
	out := flag.String("o", "", "the tar to write")
	ca := flag.String("ca", os.Getenv("CA_BUNDLE"), "the CA bundle to put at /etc/ssl/certs/ca-certificates.crt (CA_BUNDLE; default: the system's)")
	flag.Parse()
	if err := run(*out, *ca); err != nil {
		fmt.Fprintln(os.Stderr, "rootfs:", err)
		os.Exit(1)
	}
}

func run(out, ca string) error {
	if out == "" {
		return errors.New("-o: want the tar to write")
	}
	certs, err := bundle(ca)
	if err != nil {
		return err
	}
	when := time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		when = time.Unix(n, 0)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := tar.NewWriter(f)
	dir := func(name string, mode int64, uid int) error {
		return w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: when, Format: tar.FormatPAX})
	}
	file := func(name string, data []byte) error {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: when, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	err = errors.Join(
		dir("etc/", 0o755, 0),
		file("etc/group", []byte(group)),
		file("etc/passwd", []byte(passwd)),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", certs),
		dir("tmp/", 0o1777, 0),
		dir("var/", 0o755, 0),
		dir("var/lib/", 0o755, 0),
		dir("var/lib/platform/", 0o755, 65532),
	)
	return errors.Join(err, w.Close(), f.Close())
}

func bundle(given string) ([]byte, error) {
	if given != "" {
		b, err := os.ReadFile(given)
		if err == nil && len(b) == 0 {
			err = errors.New("empty")
		}
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: %w", given, err)
		}
		return b, nil
	}
	for _, p := range bundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no CA bundle in %v: give one with -ca or CA_BUNDLE (Debian: apt-get install ca-certificates)", bundles)
}
