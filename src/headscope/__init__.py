"""headscope: open up transformer attention and measure how far each map can be trusted."""
