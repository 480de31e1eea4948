module example.invalid/circuit-demo

go 1.19

require example.invalid/circuit v0.0.0

replace example.invalid/circuit => ../../bindings/go
