module kubeforge.local/echo

go 1.26.0
