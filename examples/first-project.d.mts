// examples/first-project.mjs is a script (the README's "Use it in your project"): importing it runs it and exports nothing.
export {};
