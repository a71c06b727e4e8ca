"""colorkit's reference methods: input-agnostic yardsticks every benchmark scores."""
