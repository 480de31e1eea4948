module example.invalid/circuit

go 1.19
