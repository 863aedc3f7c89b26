module kubeforge.local/guestbook

go 1.26.0
