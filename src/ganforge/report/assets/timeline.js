const frames = JSON.parse(document.getElementById("frames").textContent);
const image = document.getElementById("frame");
const slider = document.getElementById("frame-slider");
const label = document.getElementById("frame-label");
let timer = null;
function show(i) {
  i = Math.max(0, Math.min(frames.length - 1, i));
  slider.value = i;
  image.src = frames[i].src;
  label.textContent = frames[i].label + " (" + (i + 1) + " of " + frames.length + ")";
}
slider.addEventListener("input", () => show(Number(slider.value)));
document.getElementById("frame-prev").addEventListener("click", () => show(Number(slider.value) - 1));
document.getElementById("frame-next").addEventListener("click", () => show(Number(slider.value) + 1));
document.getElementById("frame-play").addEventListener("click", (event) => {
  if (timer) { clearInterval(timer); timer = null; event.target.textContent = "play"; return; }
  event.target.textContent = "pause";
  if (Number(slider.value) === frames.length - 1) show(0);
  timer = setInterval(() => {
    if (Number(slider.value) >= frames.length - 1) { clearInterval(timer); timer = null;
      event.target.textContent = "play"; return; }
    show(Number(slider.value) + 1);
  }, 400);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "ArrowLeft") show(Number(slider.value) - 1);
  if (event.key === "ArrowRight") show(Number(slider.value) + 1);
});
show(frames.length - 1);
