// Supervisor REST client: see SupervisorClient.swift.
