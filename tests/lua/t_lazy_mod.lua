return { lazy = true }
