module github.com/keybrake/keybrake

go 1.23

require (
	github.com/stripe/stripe-go/v76 v76.25.0
	go.etcd.io/bbolt v1.4.3
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/sys v0.29.0 // indirect
)
