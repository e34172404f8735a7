import { render } from "preact";
import { App } from "./app";
import "./style.css";

// index.html always has #app.
render(<App />, document.getElementById("app")!);
